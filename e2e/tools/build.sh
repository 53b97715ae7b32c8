#!/usr/bin/env bash
# Builds the binaries of the local control plane and of the single-node cluster from the Go
# modules pinned here, into the directory given as $1 (default bin/):
#   build.sh DIR            kube-apiserver (e2e/tools/go.mod) and etcd (e2e/tools/etcd/go.mod)
#   build.sh DIR cluster    those, and kube-controller-manager, kube-scheduler, kubelet and
#                           kube-proxy (e2e/tools/go.mod), CoreDNS (e2e/tools/coredns),
#                           kube-router (e2e/tools/kube-router) and cert-manager's controller,
#                           CA injector and webhook (e2e/tools/cert-manager)
# Each set is rebuilt only when its pins change: a stamp file records the hash of the go.mod and
# go.sum files it was built from.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-bin}" && cd "${1:-bin}" && pwd)
set_name=${2:-controlplane}
stamp="$out/.$set_name-stamp"

# etcd has a module of its own: in one module with k8s.io/kubernetes v1.37.2, minimal version
# selection would raise etcd to the v3.7 that Kubernetes' own tests require.
case "$set_name" in
controlplane)
	binaries=(kube-apiserver etcd)
	inputs=("$here"/go.mod "$here"/go.sum "$here"/build.sh "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go) ;;
cluster)
	binaries=(kube-apiserver etcd kube-controller-manager kube-scheduler kubelet kube-proxy coredns kube-router
		cert-manager-controller cert-manager-cainjector cert-manager-webhook)
	inputs=("$here"/go.mod "$here"/go.sum "$here"/build.sh "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go
		"$here"/coredns/go.mod "$here"/coredns/go.sum "$here"/coredns/main.go "$here"/kube-router/go.mod "$here"/kube-router/go.sum
		"$here"/cert-manager/go.mod "$here"/cert-manager/go.sum) ;;
*)
	echo "build.sh: unknown set $set_name (controlplane or cluster)" >&2; exit 2 ;;
esac
want=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)
up_to_date=true
for b in "${binaries[@]}"; do [[ -x "$out/$b" ]] || up_to_date=false; done
if $up_to_date && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
	exit 0
fi

cd "$here"
k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd etcd && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=$build_date"

# build NAME PACKAGE LDFLAGS: go build with a running count of compiled packages, because the
# first kube-apiserver build compiles about two thousand packages and takes minutes on 2 cores.
build() {
	local name=$1 pkg=$2 flags=$3 total
	total=$(go list -deps "$pkg" | wc -l)
	echo "control plane: building $name from $pkg ($total packages; the first build takes minutes, later ones seconds)"
	if ! CGO_ENABLED=0 go build -trimpath -v -ldflags "$flags" -o "$out/$name" "$pkg" 2>&1 |
		awk -v name="$name" -v total="$total" -v start="$(date +%s)" '
			/^#|\.go:[0-9]+:/ { print; next }
			{ n++; if (n % 100 == 0) { cmd = "date +%s"; cmd | getline now; close(cmd)
				printf "control plane: %s: %d/%d packages compiled, %ds\n", name, n, total, now - start; fflush() } }'
	then
		echo "control plane: building $name failed" >&2
		exit 1
	fi
}

build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
(cd etcd && build etcd . "-s -w")
if [[ "$set_name" == cluster ]]; then
	for c in kube-controller-manager kube-scheduler kubelet kube-proxy; do
		build "$c" "k8s.io/kubernetes/cmd/$c" "$ldflags"
	done
	(cd coredns && build coredns . "-s -w")
	(cd kube-router && build kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "-s -w")
	cm_version=$(cd cert-manager && go list -m -f '{{.Version}}' github.com/cert-manager/cert-manager)
	cm_ldflags="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$cm_version -X github.com/cert-manager/cert-manager/pkg/util.AppGitState=clean"
	for c in controller cainjector webhook; do
		(cd cert-manager && build "cert-manager-$c" "github.com/cert-manager/cert-manager/cmd/$c" "$cm_ldflags")
	done
	echo "cluster: kube-controller-manager, kube-scheduler, kubelet, kube-proxy $k8s_version, CoreDNS $(cd coredns && go list -m -f '{{.Version}}' github.com/coredns/coredns), kube-router $(cd kube-router && go list -m -f '{{.Version}}' github.com/cloudnativelabs/kube-router/v2) and cert-manager $cm_version are in $out"
fi
echo "$want" >"$stamp"
echo "control plane: kube-apiserver $k8s_version and etcd $etcd_version are in $out"
