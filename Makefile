# Two commands on a fresh machine (Python 3.10+ with venv):
#   make quickstart   set up .venv, then run `lwd quickstart` (MT10, CPU, < 15 min)
#   make test         set up .venv with test extras, then run the test suite
# torch==2.13.0 is installed first where torch is absent, so pip never pulls a CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: venv setup setup-all setup-dev quickstart test bench-mt10 bench-pusht clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)

setup: venv
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[metaworld]"

setup-all: venv
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[metaworld,pusht,robomimic]"

setup-dev: venv
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"

quickstart: setup
	$(BIN)/lwd quickstart

test: setup-dev
	$(BIN)/python -m pytest -q

bench-mt10: setup
	$(BIN)/python benchmarks/mt10.py

# The PushT study of BENCHMARKS.md: 200 expert demos, LWD vs DP at H = 8, 16, 32, 64, with and without block pushes.
bench-pusht: setup-all
	test -e data/pusht-200.zarr || $(BIN)/lwd demos pusht --episodes 200 --out data/pusht-200.zarr
	$(BIN)/lwd bench pusht --data data/pusht-200.zarr --out runs/bench-pusht --methods lwd,dp,dp-ddim \
		--presets lwd=pusht,dp=cpu --horizons 8,16,32,64 --perturb none,block-push:20:0.02 \
		--episodes 50 --n-envs 10 --vector sync --batch-plans

clean:
	rm -rf $(VENV) quickstart-out build src/*.egg-info
