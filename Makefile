# Thin wrappers: the logic lives in Python (model_store, tests, bench).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_LOCK := requirements-dev.lock

# The Lambda runtime's Python; `make build PYTHON_VERSION=3.11` builds a variant that
# runs on this machine's Python (used by the local stack and the tests).
PYTHON_VERSION ?= 3.13
# The one architecture switch: the layers' wheels, the functions, and the built template
# (which then accepts no other Architecture at deploy).
ARCH ?= x86_64
# sam keeps its build.toml (each layer's source hash) beside the build dir, so every
# build dir with its own cache needs its own parent: two caches under one build.toml take
# each other's hashes as theirs and copy a stale layer. The runtime's build lives where
# `sam deploy` looks (.aws-sam/build) whatever ARCH (sam's definitions tell architectures
# apart); the local-Python variant lives under .aws-sam/py3.X/.
BUILD_DIR := .aws-sam/$(if $(filter 3.13,$(PYTHON_VERSION)),,py$(PYTHON_VERSION)/)build
# The tests start many Python processes (workers, emulated functions, servers) over the
# same sources: compiled once into the venv, not on every start where the shell sets
# PYTHONDONTWRITEBYTECODE, and never as __pycache__ folders in the tree.
PYTEST := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX="$(CURDIR)/$(VENV)/pycache" $(BIN)/pytest
SAM    := SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam

.DEFAULT_GOAL := help
.PHONY: help install lock lint format test test-fast build validate local invoke clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install the project with its dev extra

# The dev environment comes from its lock (hashes required); the project itself on top,
# without resolving anything again.
$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Every lock from its inputs: pyproject's dev extra, and each layer's requirements (the
# local variants add boto3). Universal: one lock for Python 3.11-3.13, x86_64 and arm64.
LOCK_ARGS := --universal --python-version 3.11 --generate-hashes --quiet
LAYER_DEPS := layers/dependencies
lock:  ## refresh the hashed lock files after changing a pin (after make install: uses its uv)
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) -o $(DEV_LOCK)
	for flavour in onnx sklearn; do \
		$(BIN)/uv pip compile $(LAYER_DEPS)/$$flavour.txt $(LOCK_ARGS) -o $(LAYER_DEPS)/$$flavour.lock && \
		$(BIN)/uv pip compile $(LAYER_DEPS)/$$flavour.txt $(LAYER_DEPS)/local.txt $(LOCK_ARGS) \
			-o $(LAYER_DEPS)/$$flavour-local.lock || exit 1; \
	done

lint: install  ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint  ## install if needed, lint, then the whole test suite
	$(PYTEST)

test-fast: install  ## the quick lane: no sam builds, grid search, emulator, template lint or e2e stack; no lint
	$(PYTEST) -m "not slow" -q -n auto --ignore=tests/e2e -p no:schemathesis

build: install  ## sam build (offline) into .aws-sam/build, then check the size budget (ARCH=arm64)
	PYTHON_VERSION=$(PYTHON_VERSION) LAYER_ARCH=$(ARCH) $(SAM) build --build-dir $(BUILD_DIR) \
		--cache-dir $(BUILD_DIR)-cache --parameter-overrides Architecture=$(ARCH)
	$(BIN)/python layers/build_layer.py check $(BUILD_DIR)

validate: install  ## sam validate --lint and cfn-lint on template.yaml
	$(SAM) validate --lint --region us-east-1
	$(BIN)/cfn-lint template.yaml

# The local stack runs the functions on this machine's Python (the build variant for it).
API_PORT ?= 3000
S3_PORT  ?= 4567
FUNCTION ?= PredictApiFunction
EVENT    ?= events/predict.json

local: install  ## the whole system on this machine (no AWS, no Docker): API on :3000, S3 on :4567
	$(BIN)/python -m devstack local --port $(API_PORT) --s3-port $(S3_PORT) $(ARGS)

invoke: install  ## one function once under the Lambda RIE: make invoke FUNCTION=... EVENT=events/...json
	$(BIN)/python -m devstack invoke $(FUNCTION) --event $(EVENT) $(ARGS)

clean:  ## remove the venv, caches, build output and what the README's commands write
	rm -rf $(VENV) .aws-sam .local .pytest_cache .mypy_cache .ruff_cache .hypothesis \
		artifact scored
