# kube-tts — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
DEV         := $(VENV)/bin/kube-tts-dev
PYTEST      := $(VENV)/bin/pytest
BIN         := $(shell devcluster/build.sh --print)
PYTHON      ?= python3
# a stamp that changes whenever pyproject.toml does, so deps reinstall only when needed
VENV_STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# the browser tests' npm packages (playwright-core, axe-core), pinned by tests/ui/package-lock.json
UI_STAMP    := tests/ui/node_modules/.installed-$(shell sha1sum tests/ui/package-lock.json | cut -c1-12)

export PATH := $(BIN)/current:$(PATH)

##@ Everyday

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z0-9_.-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: up
up: deps venv build ## Start the local cluster and kube-tts on it, deploy the sample model and speak once
	@$(DEV) cluster-up
	@$(DEV) platform-up

.PHONY: down
down: ## Stop the local cluster and everything on it (keeps .devcluster/ state)
	@if [ -x $(DEV) ]; then $(DEV) down; fi

.PHONY: test
test: deps venv ui-deps build lint ## Lint, then every test: unit, component, integration, browser (starts the cluster if needed)
	$(PYTEST) tests

##@ Finer-grained

.PHONY: test-unit
test-unit: venv ## Unit tests only (pure logic, seconds)
	$(PYTEST) tests/unit

.PHONY: test-integration
test-integration: deps venv ui-deps build ## Integration tests against the local cluster (the web UI's browser tests too)
	$(PYTEST) tests/integration

.PHONY: test-ui
test-ui: deps venv ui-deps build ## The web UI in headless chromium against the local cluster; screenshots in artifacts/ui/
	$(PYTEST) tests/integration/test_ui.py tests/unit/test_router_ui.py

.PHONY: bench
bench: venv ## Benchmark the inference engines that run here (RTF, time to first audio, throughput); see docs/benchmarks.md
	$(PY) bench/inference.py

.PHONY: lint
lint: venv ## ruff (lint and format check), mypy, CRD drift
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m tts_crds --check
	$(VENV)/bin/mypy

.PHONY: crds
crds: venv ## Regenerate crds/*.yaml from the models in crds/tts_crds
	$(PY) -m tts_crds

.PHONY: status
status: venv ## Which local-cluster components are running
	@$(DEV) status

.PHONY: logs
logs: venv ## Print a component's log: make logs C=router (etcd, kube-apiserver, node-agent, operator, …)
	@$(DEV) logs $(C)

.PHONY: clean
clean: down ## Stop everything and delete .devcluster/ (etcd data, certificates, logs)
	@if [ -x $(DEV) ]; then $(DEV) down --wipe; fi

##@ Setup (run by the targets above when needed)

.PHONY: venv
venv: $(VENV_STAMP) ## Create .venv and install kube-tts with its dev dependencies

$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

.PHONY: ui-deps
ui-deps: $(UI_STAMP) ## Install the browser tests' npm packages (npm ci; no browser download: Debian's chromium is used)

$(UI_STAMP): tests/ui/package-lock.json
	cd tests/ui && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: deps
deps: ## Install missing Debian packages the local cluster and the browser tests need (iproute2, chromium, …)
	@devcluster/install-deps.sh

.PHONY: build
build: ## Build (or find in the cache) kube-apiserver, etcd, kwok, kubectl, helm from Go modules
	@devcluster/build.sh
