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
up: ## Start the local cluster, build and push the images, install kube-tts from them, deploy the sample model and speak once
	@VENV=$(VENV) devcluster/up.sh

.PHONY: down
down: ## Stop the local cluster and everything on it (keeps .devcluster/ state)
	@if [ -x $(DEV) ]; then $(DEV) down; fi

.PHONY: test
test: deps venv ui-deps build test-tools lint images ## Lint, build the images, then every test: unit, component, integration, browser (starts the cluster if needed)
	$(PYTEST) tests

##@ Finer-grained

.PHONY: test-unit
test-unit: venv test-tools ## Unit tests only (pure logic, seconds)
	$(PYTEST) tests/unit

.PHONY: test-integration
test-integration: deps venv ui-deps build images ## Integration tests against the local cluster (the web UI's browser tests too)
	$(PYTEST) tests/integration

.PHONY: test-ui
test-ui: deps venv ui-deps build images ## The web UI in headless chromium against the local cluster; screenshots in artifacts/ui/
	$(PYTEST) tests/integration/test_ui.py tests/unit/test_router_ui.py

.PHONY: bench
bench: deps venv build ## Every benchmark (inference, formats sent whole, long text, router overhead shared and on its own core, the pieces a pod's answer comes in, scale from zero, operator at scale, Wyoming beside wyoming-piper, the TtsJob join, the inference server beside piper's own HTTP server, piper's batching and threads, a profile of its server; about 58 min on 2 cores), then the plots; see docs/benchmarks.md
	$(PY) bench/inference.py
	$(PY) bench/formats.py
	$(PY) bench/long_text.py
	$(PY) bench/router_overhead.py --engine piper
	$(PY) bench/router_overhead.py --engine piper --router-cpus auto --output router_overhead_piper_own_core
	$(PY) bench/router_overhead.py --engine espeak
	$(PY) bench/router_overhead.py --engine espeak --router-cpus auto --output router_overhead_espeak_own_core
	$(PY) bench/pod_segments.py
	$(PY) bench/scale_from_zero.py
	$(PY) bench/operator_scale.py
	$(PY) bench/wyoming_peers.py
	$(PY) bench/renderer_join.py
	$(PY) bench/piper_peer.py
	$(PY) bench/piper_batching.py
	$(PY) bench/piper_profile.py
	$(PY) bench/piper_memory.py
	$(PY) bench/plots.py

.PHONY: bench-plots
bench-plots: venv ## Redraw docs/images/bench-*.png from bench/results/*.json (no measuring)
	$(PY) bench/plots.py

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

##@ Images (podman, no Docker daemon; see docs/images.md)

.PHONY: images
images: deps venv ## Build the five images with podman and push them to the local registry 127.0.0.1:5100 (starts it)
	@devcluster/build.sh --only registry crane
	@devcluster/images.sh

.PHONY: images-servers
images-servers: deps venv ## The five images and the two third-party speech servers the server-engine tests run (docs/servers.md; about 3 min cold)
	@devcluster/build.sh --only registry crane
	@devcluster/images.sh --servers

.PHONY: images-cuda
images-cuda: deps venv ## Build and push the CUDA inference image (inference:<version>-cuda: + kokoro, pocket-tts on torch; several GB, not part of make test)
	@devcluster/build.sh --only registry crane
	@devcluster/images.sh inference-cuda

##@ kind (for users with Docker; not run by CI — this project's machines have no Docker)

KIND_CLUSTER ?= kube-tts
KIND_NAMESPACE ?= kube-tts
IMAGE_REGISTRY ?= ghcr.io/kube-tts
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\(.*\)"/\1/p' charts/kube-tts/Chart.yaml)
# name:Dockerfile:target (the three control-plane images share the root Dockerfile's base stage)
IMAGES := operator:Dockerfile:operator router:Dockerfile:router mcp:Dockerfile:mcp wyoming:Dockerfile:wyoming inference:inference_image/Dockerfile:cpu

.PHONY: kind-up
kind-up: ## Create the kind cluster (kind-config.yaml) and advertise 2 fake GPUs on its GPU worker
	kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml
	@# no device plugin on kind: advertise nvidia.com/gpu as an extended resource so GPU pods schedule
	@# (the engines then run on the worker's CPU)
	kubectl --context kind-$(KIND_CLUSTER) proxy --port=8011 & proxy=$$!; sleep 2; \
	  node=$$(kubectl --context kind-$(KIND_CLUSTER) get nodes -l nvidia.com/gpu.present=true -o name | head -n1 | cut -d/ -f2); \
	  curl -sf -X PATCH -H 'Content-Type: application/json-patch+json' \
	    --data '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"2"}]' \
	    http://127.0.0.1:8011/api/v1/nodes/$$node/status >/dev/null; kill $$proxy

.PHONY: kind-load
kind-load: ## Build the five images with Docker and load them into the kind cluster
	@for spec in $(IMAGES); do name=$${spec%%:*}; rest=$${spec#*:}; file=$${rest%%:*}; target=$${rest#*:}; \
	  docker build -f $$file --target $$target -t $(IMAGE_REGISTRY)/$$name:$(IMAGE_TAG) . && \
	  kind load docker-image --name $(KIND_CLUSTER) $(IMAGE_REGISTRY)/$$name:$(IMAGE_TAG) || exit 1; done

.PHONY: kind-deploy
kind-deploy: ## helm install kube-tts (with the sample model) into the kind cluster and run helm test
	kubectl --context kind-$(KIND_CLUSTER) create namespace $(KIND_NAMESPACE) --dry-run=client -o yaml \
	  | kubectl --context kind-$(KIND_CLUSTER) apply -f -
	kubectl --context kind-$(KIND_CLUSTER) label namespace $(KIND_NAMESPACE) --overwrite \
	  pod-security.kubernetes.io/enforce=restricted
	helm --kube-context kind-$(KIND_CLUSTER) upgrade --install kube-tts charts/kube-tts -n $(KIND_NAMESPACE) \
	  --set image.tag=$(IMAGE_TAG) --set samples.enabled=true --set router.hpa.enabled=false --wait --timeout 10m
	helm --kube-context kind-$(KIND_CLUSTER) test kube-tts -n $(KIND_NAMESPACE)

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

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
deps: ## Install missing Debian packages the local cluster, the image builds and the browser tests need (iproute2, podman, chromium, …)
	@devcluster/install-deps.sh

.PHONY: build
build: ## Build (or find in the cache) kube-apiserver, etcd, kwok, kubectl, helm, the image registry, crane from Go modules
	@devcluster/build.sh

.PHONY: test-tools
test-tools: ## Build (or find in the cache) what only the tests use: helm and its helm-unittest plugin
	@devcluster/build.sh --only helm helm-unittest
