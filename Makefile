# iss-webhook. `make run` for the local control plane with the webhook, `make test` for every test.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
BIN := $(CURDIR)/bin
GO ?= go
# One build configuration for every go command here (binaries, tests, the images, the cluster's
# components): the images and e2e/tools/build.sh build static, trimmed binaries, and with the
# same settings the tests reuse what those builds compiled instead of compiling it all again.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath
# Packages with unit tests: everything but the end-to-end suite, which needs the control plane.
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e$$')
# controller-gen, pinned; go run fetches and builds it on first use.
CONTROLLER_GEN = $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
GENERATED = policy/v1alpha1/zz_generated.deepcopy.go manifests/crds/iss.platform_isspolicies.yaml
# Packages whose TestGenerated* tests compare a checked-in file with what the code renders (the
# webhook configurations, the docs' references); with -update they rewrite it.
GENERATED_PKGS = ./policy/ ./webhook/ ./policy/v1alpha1/ ./cmd/iss-webhook/ ./cmd/issctl/

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/iss-webhook, bin/issctl, bin/iss-dev and bin/iss-cluster
	$(GO) build -o $(BIN)/iss-webhook ./cmd/iss-webhook
	$(GO) build -o $(BIN)/issctl ./cmd/issctl
	$(GO) build -o $(BIN)/iss-dev ./e2e/cmd/iss-dev
	$(GO) build -o $(BIN)/iss-cluster ./e2e/cmd/iss-cluster

.PHONY: image
image: ## OCI image tarballs of iss-webhook, the pause image and the probe image in bin/images (and CoreDNS's after make cluster-binaries), without Docker
	$(GO) run ./e2e/cmd/iss-image --repo $(CURDIR) --out $(BIN)/images --go $(GO) $(if $(wildcard $(BIN)/coredns),--coredns $(BIN)/coredns)

.PHONY: controlplane
controlplane: ## build bin/kube-apiserver and bin/etcd from the pinned modules (only when the pins change)
	bash e2e/tools/build.sh $(BIN)

# make run OPENBAO_ADDR=https://... OPENBAO_TOKEN_FILE=... turns the OpenBao existence check on
# against your own OpenBao (OPENBAO_AUTH=kubernetes with OPENBAO_JWT_FILE, OPENBAO_ROLE and
# OPENBAO_KUBERNETES_MOUNT for the Kubernetes method; OPENBAO_CACERT, OPENBAO_KV_MOUNT).
OPENBAO_RUN_FLAGS = $(if $(OPENBAO_ADDR),--openbao-addr '$(OPENBAO_ADDR)' --openbao-auth '$(or $(OPENBAO_AUTH),token)' \
	$(if $(OPENBAO_TOKEN_FILE),--openbao-token-file '$(OPENBAO_TOKEN_FILE)') \
	$(if $(OPENBAO_JWT_FILE),--openbao-jwt-file '$(OPENBAO_JWT_FILE)') \
	$(if $(OPENBAO_ROLE),--openbao-role '$(OPENBAO_ROLE)') \
	$(if $(OPENBAO_KUBERNETES_MOUNT),--openbao-kubernetes-mount '$(OPENBAO_KUBERNETES_MOUNT)') \
	$(if $(OPENBAO_CACERT),--openbao-ca-file '$(OPENBAO_CACERT)') \
	$(if $(OPENBAO_KV_MOUNT),--openbao-kv-mount '$(OPENBAO_KV_MOUNT)'))

.PHONY: cluster-binaries
cluster-binaries: ## build the single-node cluster's binaries (kubelet, kube-proxy, CoreDNS, kube-router, ...) from the pinned modules
	bash e2e/tools/build.sh $(BIN) cluster

# The single-node cluster needs root and changes the host's networking while it runs (see README).
.PHONY: cluster
cluster: build ## a real single-node cluster on this machine (root; no Docker); stays in the foreground, Ctrl-C stops it and undoes its host changes
	$(BIN)/iss-cluster --repo $(CURDIR) up

.PHONY: cluster-clean
cluster-clean: build ## undo what a killed `make cluster` left on the host
	$(BIN)/iss-cluster --repo $(CURDIR) clean

.PHONY: run
run: build controlplane ## local control plane with the webhook registered; stays in the foreground (OPENBAO_ADDR=... to check paths in your OpenBao)
	$(BIN)/iss-dev --repo $(CURDIR) --state-dir $(CURDIR)/.iss-dev $(OPENBAO_RUN_FLAGS)

.PHONY: generate
generate: ## regenerate the ISSPolicy code and CRD (controller-gen), the webhook configurations and the docs' references
	$(CONTROLLER_GEN) object paths=./policy/v1alpha1/... crd:crdVersions=v1 output:crd:dir=manifests/crds
	$(GO) test -count=1 $(GENERATED_PKGS) -run '^TestGenerated' -update

.PHONY: test
test: check unit e2e e2e-cluster e2e-kind ## formatting, vet, tidiness, unit tests, the end-to-end suite on the local control plane and on the single-node cluster, and on kind where Docker runs

.PHONY: check
check: ## gofmt, go vet and go mod tidy are clean; the generated ISSPolicy code and CRD are current
	@before=$$(cat $(GENERATED) | sha256sum); $(CONTROLLER_GEN) object paths=./policy/v1alpha1/... crd:crdVersions=v1 output:crd:dir=manifests/crds; \
	if [[ "$$(cat $(GENERATED) | sha256sum)" != "$$before" ]]; then \
		echo "the generated files were stale and controller-gen has rewritten them: $(GENERATED)"; exit 1; fi
	@$(GO) test -count=1 $(GENERATED_PKGS) -run '^TestGenerated' >/dev/null || { \
		echo "generated files are stale: run make generate"; $(GO) test -count=1 $(GENERATED_PKGS) -run '^TestGenerated' 2>&1 | grep -v '^ok' ; exit 1; }
	@unformatted=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [[ -n "$$unformatted" ]]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd e2e/tools && $(GO) mod tidy -diff
	cd e2e/tools/etcd && $(GO) mod tidy -diff
	cd e2e/tools/coredns && $(GO) mod tidy -diff
	cd e2e/tools/kube-router && $(GO) mod tidy -diff
	cd e2e/tools/cert-manager && $(GO) mod tidy -diff

.PHONY: unit
unit: controlplane ## unit, golden and handler tests (the binary's own tests start a control plane)
	$(GO) test -count=1 $(UNIT_PKGS)
	@if [[ -z "$${OPENBAO_ADDR:-}" || -z "$${OPENBAO_TOKEN:-}" ]]; then \
		echo "note: the real-server runs of TestScenarios and TestAgainstRealOpenBao were skipped: no OpenBao or Vault server is built here; set OPENBAO_ADDR and OPENBAO_TOKEN (the root token of a dev server) to run them against yours"; fi

.PHONY: e2e
e2e: build controlplane ## the Ginkgo suite, with kubectl, on the local control plane
	$(GO) test -count=1 -v -timeout 30m ./e2e/ -ginkgo.v $(if $(CI),-ginkgo.no-color)

.PHONY: e2e-cluster
e2e-cluster: build ## the Ginkgo suite on the single-node cluster, iss-webhook installed from its image; skipped (saying why) without root or writable cgroups
	$(BIN)/iss-cluster --repo $(CURDIR) e2e $(if $(CI),-- -ginkgo.no-color)

.PHONY: e2e-kind
e2e-kind: build ## the Ginkgo suite on a kind cluster (the image, cert-manager, issctl install); skipped without Docker
	$(GO) run ./e2e/cmd/iss-kind --repo $(CURDIR) $(if $(CI),-- -ginkgo.no-color)

.PHONY: bench
bench: ## benchmarks of the whole review path
	$(GO) test -run '^$$' -bench . -benchmem ./webhook/
	$(GO) test -run '^$$' -bench WildcardBase -benchmem ./policy/

# The handlers' fuzz inputs are large: minimizing each new one for the default minute would take
# most of the run, hence -fuzzminimizetime.
.PHONY: fuzz
fuzz: ## fuzz each parser (annotations, egress hosts, paths, image references, Terraform backend blocks, recorded worker code) and every handler for FUZZTIME (default 60s) each; new findings land in policy/testdata/fuzz and webhook/testdata/fuzz
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzParseNetworkAccess$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzParseSecretKeys$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzParseSecretPath$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzEngineImagePattern$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzEgressHost$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzParseTerraformBackend$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./policy/ -run '^$$' -fuzz '^FuzzRecordedCode$$' -fuzztime $(or $(FUZZTIME),60s)
	$(GO) test ./webhook/ -run '^$$' -fuzz '^FuzzAdmissionReviewBody$$' -fuzztime $(or $(FUZZTIME),60s) -fuzzminimizetime 5s
	$(GO) test ./webhook/ -run '^$$' -fuzz '^FuzzAdmissionReviewObjects$$' -fuzztime $(or $(FUZZTIME),60s) -fuzzminimizetime 5s

.PHONY: golden
golden: ## rewrite the golden files after an intended change
	$(GO) test ./mutators/ ./policy/ ./cmd/issctl/ -run Golden -update

.PHONY: clean
clean: ## remove build outputs and the local state
	rm -rf $(BIN) .iss-dev
