"""`lwd calibrate SUITE`: the largest push the task's own expert survives.

A study's pushes are only fair if the task can be done under them: a push that defeats the
scripted expert, which re-plans from the true state, tests luck, not recovery. For each push
magnitude (in the suite's own unit) the expert runs on the evaluation's test seeds under
`PUSH:MAGNITUDE:PROBABILITY`; the chosen magnitude is the largest whose success stays at or above
`min_success` (by default 0.9), reported with its Wilson interval.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from lwd.demos import rollout_expert
from lwd.envs.perturb import apply_perturbation
from lwd.experiments.stats import wilson
from lwd.suites import Suite


def push_name(suite: Suite) -> str:
    """The suite's physical push perturbation (its env's PUSH_NAME)."""
    env = suite.make_env(suite.tasks[0])
    try:
        name = getattr(env.unwrapped, "PUSH_NAME", None)
    finally:
        env.close()
    if name is None:
        raise ValueError(f"{suite.name} has no push perturbation to calibrate")
    return name


def calibrate_push(suite: Suite, magnitudes: list[float], probability: float = 0.05, episodes: int = 50,
                   min_success: float = 0.9, seed_start: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Expert success per push magnitude on the test seeds, and the largest magnitude it survives."""
    if not magnitudes or min(magnitudes) < 0:
        raise ValueError(f"magnitudes must be >= 0, got {magnitudes}")
    name = push_name(suite)
    start = suite.test_seed_start if seed_start is None else seed_start
    rows = []
    for magnitude in sorted(magnitudes):
        spec = f"{name}:{magnitude:g}:{probability:g}"
        successes, n = 0, 0
        for task in suite.tasks:
            env = apply_perturbation(suite.make_env(task), spec)
            expert = suite.make_expert(task)
            for seed in tqdm(range(start, start + episodes), desc=f"expert under {spec} ({task})", disable=not progress, unit="ep"):
                successes += int(rollout_expert(env, expert, seed, suite.max_episode_steps).success)
                n += 1
            env.close()
        interval = wilson(successes, n)
        rows.append({"perturbation": spec, "magnitude": magnitude, "successes": successes, "episodes": n,
                     "success": interval.estimate, "low": interval.low, "high": interval.high})
    survived = [r for r in rows if r["success"] >= min_success]
    return {"suite": suite.name, "push": name, "probability": probability, "min_success": min_success, "rows": rows,
            "chosen": max(survived, key=lambda r: r["magnitude"])["perturbation"] if survived else None}
