"""Shared tiny fixtures, built in-test (no files in the repo, nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.data import Episodes


def make_episodes(num_episodes: int = 6, length: int = 20, obs_dim: int = 5, action_dim: int = 2, num_tasks: int = 2, seed: int = 0) -> Episodes:
    """Random-walk observations; actions a smooth function of obs (so they are learnable)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(obs_dim, action_dim)).astype(np.float32)
    eps = []
    for i in range(num_episodes):
        obs = np.cumsum(rng.normal(scale=0.3, size=(length, obs_dim)), axis=0).astype(np.float32)
        task = i % num_tasks
        action = np.tanh(obs @ w + task).astype(np.float32)
        eps.append({"obs": obs, "action": action, "task": np.full(length, task, np.int64)})
    return Episodes.from_list(eps, attrs={"tasks": [f"t{k}" for k in range(num_tasks)], "suite": ""})


# One thread: tests are many tiny ops, where thread start-up and spinning cost more than they save,
# and CI shares its 2 cores with env worker processes.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _methods_registered_by_a_test_are_forgotten():
    """A method a test (or a README block) registers stays out of later tests' "known: ..." lists;
    lwd's own method folders, imported once per process, stay registered."""
    yield
    from lwd.methods import base

    for name, cls in list(base._REGISTRY.items()):
        if not cls.__module__.startswith("lwd."):
            del base._REGISTRY[name]


def _robomimic_env(task: str):
    pytest.importorskip("robosuite")
    from lwd.envs.robomimic import RobomimicEnv

    env = RobomimicEnv(task)
    yield env
    env.close()


@pytest.fixture(scope="module")
def lift_env():
    """robomimic Lift (robosuite), one per test module: building it takes about a second."""
    yield from _robomimic_env("lift")


@pytest.fixture(scope="module")
def can_env():
    """robomimic Can (robosuite), one per test module."""
    yield from _robomimic_env("can")


def assert_exported_eval_matches_library(run, folder, episodes: int, tmp_path, steps_compared: int = 40) -> None:
    """`lwd eval RUN --exported FOLDER` gives the library's episodes: the same seeds, successes and
    lengths, the same number of generations (more than 3), and, recorded with --rollouts, the same
    observations and actions over each episode's first `steps_compared` steps (within 1e-3).

    Not the whole trajectories, nor summed rewards: actions agree to float rounding (~1e-7), but an
    untrained policy's 500 contact-rich steps amplify that, and where it ends up depends on the
    machine's float kernels (summed rewards 5.5% apart on one 2026-12-07 machine, 1.1% on others)."""
    import json

    from lwd.cli import main
    from lwd.data import Episodes

    args = ["eval", str(run), "--episodes", str(episodes)]
    assert main([*args, "--out", str(tmp_path / "library.json"), "--rollouts", str(tmp_path / "library.zarr")]) == 0
    assert main([*args, "--exported", str(folder), "--out", str(tmp_path / "exported.json"),
                 "--rollouts", str(tmp_path / "exported.zarr")]) == 0
    library, exported = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("library", "exported"))
    assert [(e["seed"], e["success"], e["steps"]) for e in exported["episodes"]] == \
           [(e["seed"], e["success"], e["steps"]) for e in library["episodes"]]
    assert exported["cost"]["generations"] == library["cost"]["generations"] > 3
    ours, theirs = Episodes.load(tmp_path / "library.zarr"), Episodes.load(tmp_path / "exported.zarr")
    assert ours.num_episodes == theirs.num_episodes == len(library["episodes"])
    for i in range(ours.num_episodes):
        a, b = ours.episode(i), theirs.episode(i)
        for key in ("obs", "action"):
            np.testing.assert_allclose(b[key][:steps_compared], a[key][:steps_compared], atol=1e-3, err_msg=f"episode {i}, {key}")


@pytest.fixture
def counted(monkeypatch):
    """Count the training runs and evaluations a study performs in this process (a rerun that finds
    its cells cached must do none)."""
    import lwd.pipeline as pipeline

    calls = {"train": 0, "eval": 0}
    train, evaluate = pipeline.train_run, pipeline.evaluate_run

    def train_run(*args, **kwargs):
        calls["train"] += 1
        return train(*args, **kwargs)

    def evaluate_run(*args, **kwargs):
        calls["eval"] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_run", train_run)
    monkeypatch.setattr(pipeline, "evaluate_run", evaluate_run)
    return calls
