# The README's commands. Each one sets itself up on a fresh clone.
#   make demo   the main job: prepare, train the tiny pair, evaluate, release, report
#   make test   the test suite
#   make setup  only the set-up: .venv, torch first and pinned, then bytelm[dev]
#   make gpu-check  on a CUDA machine: the GPU tests and the kernel, training and decoding
#                   benchmarks (JSON in runs/bench/); TORCH=... picks a CUDA build of torch
PYTHON ?= python3
VENV ?= .venv
# Pinned torch is installed first; a constraint keeps every later install on it.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Local data for offline machines: ../shared/data when it exists and nothing else was chosen.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin BYTELM_DATA_DIR),undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export BYTELM_DATA_DIR := $(SHARED_DATA)
endif
endif

.PHONY: setup test demo gpu-check lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH)"
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/bytelm demo

gpu-check: setup
	@$(BIN)/python -c "import sys, torch; torch.cuda.is_available() or sys.exit('make gpu-check: no CUDA device visible to torch ' + torch.__version__)"
	$(BIN)/pip install --quiet -c $(VENV)/constraints.txt -e '.[fla]'
	$(BIN)/python -m pytest -q -m gpu tests/kernels
	$(BIN)/bytelm bench kernels --out runs/bench/kernels.json
	$(BIN)/bytelm bench train --pair small --compile on --device cuda --out runs/bench/train-small.json
	$(BIN)/bytelm bench generate --pair small --compile --device cuda --out runs/bench/generate-small
	$(BIN)/bytelm bench generate --pair small --compile aot --device cuda --out runs/bench/generate-small

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs build *.egg-info
