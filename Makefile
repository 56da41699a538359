# make test: venv, install, lint, type-check, tests.  make demo: the real local ladder.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: install lint typecheck test demo local clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check $(wildcard cascade tests examples benchmarks)

typecheck: install
	$(BIN)/mypy

test: install lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# make bench: the performance figures of docs/readme/performance.md. LiteLLM and openai are compared
# against, never dependencies: they live in their own venv, .venv-bench.
BENCH_VENV ?= .venv-bench
BENCH_PKGS ?= litellm==1.110.2 openai==3.57.0 py-spy==0.4.3
BENCH_STAMP := $(BENCH_VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[testing]' $(BENCH_PKGS)
	touch $@

.PHONY: bench-env bench
bench-env: $(BENCH_STAMP)

bench: bench-env
	$(BENCH_VENV)/bin/python benchmarks/overhead.py
	$(BENCH_VENV)/bin/python benchmarks/engine_cpu.py
	$(BENCH_VENV)/bin/python benchmarks/scale.py
	$(BENCH_VENV)/bin/python benchmarks/import_time.py
