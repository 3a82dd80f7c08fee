# agentgw developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
GOBIN_DIR := $(shell go env GOPATH 2>/dev/null)/bin
HELM := $(GOBIN_DIR)/helm
HELM_VERSION := v3.16.4
PROTO_SRC := $(shell find api/proto -name '*.proto' | sort)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	$(BIN)/pip check
	$(BIN)/python hack/accel.py build
	touch $(STAMP)

install: $(STAMP) ## Create .venv with agentgw and its pinned dev tools

accel: $(STAMP) ## Compile the request path with mypyc (dataplane/accel.py); a no-op when up to date
	$(BIN)/python hack/accel.py build

$(HELM):
	@command -v go >/dev/null || (echo "the Go toolchain is needed to build helm for the chart tests" >&2; exit 1)
	go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

tools: $(HELM) ## Build the test tools that come from the Go module proxy (helm)

run: accel ## Run the gateway on examples/standalone/config.yaml with a demo upstream
	@bash examples/standalone/run.sh

apiserver: ## Build kube-apiserver, etcd and kubectl for e2e tests once (cached in ~/.cache/agentgw)
	bash hack/apiserver.sh build

apiserver-up: apiserver ## Start a kube-apiserver + etcd on 127.0.0.1; prints the kubeconfig path
	@bash hack/apiserver.sh up

apiserver-down: ## Stop the kube-apiserver + etcd started by apiserver-up
	@bash hack/apiserver.sh down

test: accel $(HELM) apiserver ## Run the whole test suite (unit, integration, e2e on a real apiserver)
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff format check, ruff, import-linter contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

fmt: $(STAMP) ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP) ## mypy --strict on api/, controller/, dataplane/
	$(BIN)/mypy

gen: $(STAMP) ## Regenerate protobuf code (api/proto) and CRDs (crds/)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_SRC)
	$(BIN)/python hack/gen_crds.py
	cp crds/*.yaml charts/agentgw/crds/

gen-check: gen ## Fail if regenerated code differs from what is checked in
	@git diff --exit-code -- api/proto crds charts/agentgw/crds || (echo "generated code is stale: run make gen and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- api/proto crds charts/agentgw/crds)" || (echo "untracked generated files: run make gen and commit" >&2; exit 1)

bench: bench-http bench-xds bench-controller bench-policies ## Run all benchmarks

bench-http: accel ## HTTP proxy benchmark: direct, nginx, agentgw 1 and 2 workers (wrk)
	bash bench/http/run.sh

bench-xds: $(STAMP) ## xDS benchmark: propagation at 10/1,000/10,000 routes, initial sync, memory
	bash bench/xds/run.sh

bench-controller: $(STAMP) ## Controller benchmark: translate+publish at 1,000/10,000 routes, kubectl apply -> served latency
	bash bench/controller/run.sh

bench-policies: accel ## Policy cost: JWT, 3-rule CEL authorization, local rate limit vs no policy (wrk)
	bash bench/policies/run.sh

lock: ## Re-resolve and pin dependencies into requirements.lock
	rm -rf /tmp/agentgw-lock-venv && $(PYTHON) -m venv /tmp/agentgw-lock-venv
	/tmp/agentgw-lock-venv/bin/pip install -q --upgrade pip
	/tmp/agentgw-lock-venv/bin/pip install -q -e '.[dev]'
	/tmp/agentgw-lock-venv/bin/pip freeze --exclude-editable | grep -v '^agentgw' > requirements.lock

clean: ## Remove the venv, caches and the compiled request path
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
	find dataplane -name '*.so' -delete


.PHONY: help install accel tools apiserver apiserver-up apiserver-down run test lint fmt typecheck gen gen-check bench bench-http bench-xds bench-controller bench-policies lock clean
