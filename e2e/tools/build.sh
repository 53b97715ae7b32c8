#!/usr/bin/env bash
# Builds kube-apiserver and etcd for the local control plane from the Go modules pinned in
# e2e/tools/go.mod (Kubernetes) and e2e/tools/etcd/go.mod (etcd), into the directory given as $1 (default bin/). The binaries are rebuilt only
# when the pins change: a stamp file records the hash of go.mod and go.sum they were built from.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-bin}" && cd "${1:-bin}" && pwd)
stamp="$out/.controlplane-stamp"

# etcd has a module of its own: in one module with k8s.io/kubernetes v1.37.2, minimal version
# selection would raise etcd to the v3.7 that Kubernetes' own tests require.
want=$(cat "$here"/go.mod "$here"/go.sum "$here"/build.sh "$here"/etcd/go.mod "$here"/etcd/go.sum "$here"/etcd/main.go | sha256sum | cut -d' ' -f1)
if [[ -x "$out/kube-apiserver" && -x "$out/etcd" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
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
echo "$want" >"$stamp"
echo "control plane: kube-apiserver $k8s_version and etcd $etcd_version are in $out"
