# Two commands on a fresh machine (Python 3.10+ with venv):
#   make quickstart   set up .venv, then run `lwd quickstart` (MT10, CPU, < 15 min)
#   make test         set up .venv with test extras, then run the test suite
# torch==2.13.0 is installed first where torch is absent, so pip never pulls a CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: venv setup setup-dev quickstart test bench-mt10 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)

setup: venv
	$(BIN)/python -m pip install --quiet -e ".[metaworld]"

setup-dev: venv
	$(BIN)/python -m pip install --quiet -e ".[dev]"

quickstart: setup
	$(BIN)/lwd quickstart

test: setup-dev
	$(BIN)/python -m pytest -q

bench-mt10: setup
	$(BIN)/python benchmarks/mt10.py

clean:
	rm -rf $(VENV) quickstart-out build src/*.egg-info
