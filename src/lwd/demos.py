"""Collect expert demonstrations for a suite into an `Episodes` store.

Episodes are seeded (seed = seed_start + i per task) so a dataset can be regenerated exactly.
Only successful episodes are kept by default, the usual practice for scripted demonstrations;
the episode ends at the first successful step, which is also where evaluation stops counting.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from lwd.data import Episodes
from lwd.envs.registry import Suite


def collect_demos(
    suite: Suite,
    episodes_per_task: int,
    seed_start: int = 0,
    keep_failures: bool = False,
    max_attempts_factor: int = 3,
    progress: bool = True,
) -> Episodes:
    """Run each task's expert until `episodes_per_task` episodes are kept (or attempts run out)."""
    if episodes_per_task <= 0:
        raise ValueError(f"episodes_per_task must be positive, got {episodes_per_task}")
    kept: list[dict[str, np.ndarray]] = []
    seeds: list[int] = []
    attempts: dict[str, int] = {}
    started = time.perf_counter()
    bar = tqdm(total=episodes_per_task * len(suite.tasks), desc=f"demos {suite.name}", disable=not progress, unit="ep")
    for task_id, task in enumerate(suite.tasks):
        env = suite.make_env(task, terminate_on_success=True)
        expert = suite.make_expert(task)
        n_kept, seed = 0, seed_start
        while n_kept < episodes_per_task and seed < seed_start + max_attempts_factor * episodes_per_task:
            obs_list, act_list, sim_states = [], [], []
            obs, info = env.reset(seed=seed)
            expert.reset(seed)
            success = False
            for _ in range(suite.max_episode_steps):
                action = expert.act(obs, info)
                obs_list.append(obs)
                act_list.append(action)
                if "sim_state" in info:  # simulator state at this obs (robomimic HDF5 export needs it)
                    sim_states.append(np.asarray(info["sim_state"], np.float64))
                obs, _, terminated, truncated, info = env.step(action)
                success = success or bool(info.get("success", False))
                if terminated or truncated:
                    break
            if success or keep_failures:
                episode = {
                    "obs": np.asarray(obs_list, np.float32),
                    "action": np.asarray(act_list, np.float32),
                    "task": np.full(len(obs_list), task_id, np.int64),
                }
                if len(sim_states) == len(obs_list):
                    episode["sim_state"] = np.stack(sim_states)
                kept.append(episode)
                seeds.append(seed)
                n_kept += 1
                bar.update(1)
            seed += 1
        attempts[task] = seed - seed_start
        env.close()
        if n_kept < episodes_per_task:
            bar.write(f"warning: {task}: only {n_kept}/{episodes_per_task} successful episodes in {attempts[task]} attempts")
    bar.close()
    attrs = {
        "suite": suite.name,
        "tasks": list(suite.tasks),
        "seeds": seeds,
        "source": "scripted expert",
        "attempts_per_task": attempts,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return Episodes.from_list(kept, attrs=attrs)
