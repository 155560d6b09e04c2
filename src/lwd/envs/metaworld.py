"""Metaworld (v3) tasks as seeded single-task gymnasium envs.

An episode is identified by (task name, seed): the seed picks one of the benchmark's 50 goal
variations of that task (as Metaworld's MT10/MT1 benchmarks do at each reset) and seeds the
reset, so the same seed always gives the same episode whatever else is running.

Success protocol (see DESIGN.md): an episode succeeds if info["success"] is true at any step
within 500; by default the env terminates at the first success, which does not change the
metric and saves time.
"""

from __future__ import annotations

import functools
import pickle
import warnings
from typing import Any

import numpy as np

from lwd.envs.base import SeededTaskEnv
from lwd.optional import require

MT10_TASKS: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
MAX_EPISODE_STEPS = 500
OBS_DIM = 39
ACTION_DIM = 4


def import_metaworld() -> Any:
    return require("metaworld", "metaworld", "Metaworld")


@functools.lru_cache(maxsize=None)
def _benchmark(kind: str, task_name: str) -> Any:
    """Building a Metaworld benchmark samples its goals by resetting envs (MT10: ~4.5 s): do it once."""
    metaworld = import_metaworld()
    return metaworld.MT10(seed=0) if kind == "mt10" else metaworld.MT1(task_name, seed=0)


@functools.lru_cache(maxsize=None)
def benchmark_tasks(task_name: str, suite: str = "mt10") -> tuple[type, tuple[Any, ...]]:
    """The env class and the 50 goal variations of a task, as the benchmark defines them.

    Metaworld ships these tasks as its own pickled records (trusted package data, not user files).
    MT10 tasks come from `metaworld.MT10(seed=0)`, others from `metaworld.MT1(name, seed=0)`.
    """
    metaworld = import_metaworld()
    all_names = set(metaworld.ALL_V3_ENVIRONMENTS)
    if task_name not in all_names:
        raise ValueError(f"unknown Metaworld task {task_name!r}; known tasks include {', '.join(MT10_TASKS)}")
    bench = _benchmark("mt10", "") if (suite == "mt10" and task_name in MT10_TASKS) else _benchmark("mt1", task_name)
    tasks = tuple(t for t in bench.train_tasks if t.env_name == task_name)
    return bench.train_classes[task_name], tasks


def goal_of(task: Any) -> np.ndarray:
    """The goal/object variation vector of a Metaworld task record (for logging)."""
    return np.asarray(pickle.loads(task.data)["rand_vec"])  # metaworld's own package data


class MetaworldTaskEnv(SeededTaskEnv):
    """One Metaworld task; `reset(seed=s)` picks goal variation from `s` and resets deterministically."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task_name: str,
        suite: str = "mt10",
        terminate_on_success: bool = True,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_mode: str | None = None,
    ) -> None:
        env_cls, self._tasks = benchmark_tasks(task_name, suite)
        self.task_name = task_name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._env = env_cls(render_mode=render_mode) if render_mode else env_cls()
        super().__init__(OBS_DIM, -1.0, 1.0, ACTION_DIM, terminate_on_success,
                         min(max_episode_steps, self._env.max_path_length), render_mode)
        self.goal_index = -1

    def _reset(self, seed: int, options: dict | None) -> tuple[np.ndarray, dict]:
        self.goal_index = int(np.random.default_rng(seed).integers(len(self._tasks)))
        self._env.set_task(self._tasks[self.goal_index])
        obs, info = self._env.reset(seed=seed)
        info = dict(info, goal_index=self.goal_index, task_name=self.task_name)
        return obs.astype(np.float32), info

    def _advance(self, action: np.ndarray) -> tuple[np.ndarray, float, dict]:
        obs, reward, _, _, info = self._env.step(action)
        info = dict(info, success=bool(info.get("success", 0.0) > 0.5))
        return obs.astype(np.float32), float(reward), info
