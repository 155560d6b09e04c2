# Two commands on a fresh machine (Python 3.10+ with venv):
#   make quickstart   set up .venv, then run `lwd quickstart` (MT10, CPU, < 15 min)
#   make test         set up .venv with test extras, then run the test suite
# torch==2.13.0 is installed first where torch is absent, so pip never pulls a CUDA build.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

# LeRobot's venv: lerobot 0.4.4 needs torch < 2.11, torchvision and numpy 2, which lwd's
# own venv (torch 2.13.0; numpy < 2 for robosuite) cannot hold. torch and torchvision go first (on
# x86_64 pip takes both from local disk), then lerobot, then lwd's core and the plugin, editable.
LEROBOT_VENV ?= .venv-lerobot
LEROBOT_BIN := $(LEROBOT_VENV)/bin
LEROBOT_TORCH ?= torch==2.9.1 torchvision==0.24.1
# lwd's core tests that also run there (numpy 2, torch 2.9)
LEROBOT_CORE_TESTS ?= tests/test_lerobot.py tests/test_lwd_model.py tests/test_data_episodes.py \
	tests/test_data_normalize.py tests/test_data_segments.py tests/test_pusht.py

.PHONY: venv setup setup-all setup-dev quickstart test setup-lerobot test-lerobot bench-mt10 bench-pusht clean

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

$(LEROBOT_BIN)/lerobot-train:
	$(PYTHON) -m venv $(LEROBOT_VENV)
	$(LEROBOT_BIN)/python -m pip install --quiet --upgrade pip
	$(LEROBOT_BIN)/python -m pip install --quiet $(LEROBOT_TORCH)
	$(LEROBOT_BIN)/python -m pip install --quiet lerobot==0.4.4

setup-lerobot: $(LEROBOT_BIN)/lerobot-train
	$(LEROBOT_BIN)/python -m pip install --quiet -e . -e "./lerobot_policy_lwd[test]"

# The LWD plugin through lerobot-train / lerobot-eval, and lwd's core under numpy 2 (.ci/run, after make test).
test-lerobot: setup-lerobot
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(LEROBOT_BIN)/python -m pytest -q -p no:cacheprovider \
		$(LEROBOT_CORE_TESTS) lerobot_policy_lwd/tests

bench-mt10: setup
	$(BIN)/python benchmarks/mt10.py

# The PushT study of BENCHMARKS.md: 200 expert demos, LWD vs DP at H = 8, 16, 32, 64, with and without block pushes.
bench-pusht: setup-all
	test -e data/pusht-200.zarr || $(BIN)/lwd demos pusht --episodes 200 --out data/pusht-200.zarr
	$(BIN)/lwd bench pusht --data data/pusht-200.zarr --out runs/bench-pusht --methods lwd,dp,dp-ddim \
		--presets lwd=pusht,dp=cpu --horizons 8,16,32,64 --perturb none,block-push:20:0.02 \
		--episodes 50 --n-envs 10 --vector sync --batch-plans

clean:
	rm -rf $(VENV) $(LEROBOT_VENV) quickstart-out build src/*.egg-info lerobot_policy_lwd/src/*.egg-info
