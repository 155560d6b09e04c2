"""Collect expert demonstrations for a suite into an `Episodes` store.

Episodes are seeded (seed = seed_start + i per task) so a dataset can be regenerated exactly.
Only successful episodes are kept by default, the usual practice for scripted demonstrations;
the episode ends at the first successful step, which is also where evaluation stops counting.

Recovery data: a policy trained only on the expert's own path has never seen a state off it.
Two options make demonstrations leave the path and come back, with the expert labelling every
state visited (its clean action is what is recorded):
- `dart_noise` (DART, Laskey et al. 2017): the env executes the expert's action plus Gaussian
  noise of std `dart_noise` x (action range / 2), drawn from the episode seed;
- `perturb`: a named perturbation (e.g. `object-push:1:0.05`) acts during the demonstrations,
  and the expert's recoveries from it are kept.
The dataset's attributes record both, so a dataset says how it was made. Per step the store
also keeps what a dynamics model (WARPD's world model, `benchmarks/world_model_error.py`) needs
beyond the labels: `executed_action` (with DART noise: what the env actually executed) and
`pushed` (with a push perturbation: the object was displaced during that transition).

Image suites (`pusht/image`, `robomimic/<task>/image`): the camera frames the env rendered are
recorded too, one per step (`Episodes.frames`, under the suite's image keys), beside the low-dim
"obs"; the expert still acts from the simulator state, as on every suite. Frames dwarf everything
else (20 PushT demos: 2,659 frames, 73.5 MB; a robomimic demo of up to 400 steps at 84 px holds up
to 8.5 MB), so `write_demos` (what `lwd demos` and studies run) writes each kept episode's frames to disk as
it ends (`frame_store`, a `lwd.data.frames.FrameSpool` beside the output) and memory holds one
episode's: peak RSS of `lwd demos pusht/image --episodes 20` went from 530 MB to 411 MB, the same
dataset bit for bit.

Styles (`styles`, `lwd demos --styles`): where a suite's expert knows several distinct ways to
solve the task (`Suite.styles`), each episode's way is drawn from the requested mix with an RNG
seeded by the episode seed alone, so a dataset still regenerates exactly and a seed's style does
not depend on which other episodes failed. The store then has a per-step integer `style` key
(an index into `attrs["styles"]`) and the attributes `styles`, `style_mix` (the normalised
weights asked for) and `style_counts` (what was kept). Without `styles` nothing of this is
written and the data is what it was before styles existed.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from lwd.data import Episodes
from lwd.experts.base import Expert
from lwd.suites import Suite


@dataclass
class ExpertRollout:
    """One expert episode: what it saw and did, and how it ended."""

    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    sim_states: list[np.ndarray] = field(default_factory=list)
    """Simulator state at each obs, when the env reports one (robomimic HDF5 export needs it)."""
    executed: list[np.ndarray] = field(default_factory=list)
    """Actions the env executed, when they differ from the labels (DART noise)."""
    pushed: list[bool] = field(default_factory=list)
    """Per step, whether a perturbation pushed the object during that transition (push perturbations only)."""
    success: bool = False
    max_score: float | None = None
    last_info: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.actions)


def rollout_expert(env: gym.Env, expert: Expert, seed: int, max_steps: int, dart_noise: float = 0.0) -> ExpertRollout:
    """Run the expert for one seeded episode (until the env ends it or `max_steps`).

    With `dart_noise` > 0 the env executes the expert's action plus noise (std `dart_noise` x half
    the action range, clipped to the action box) while the clean action is recorded as the label."""
    run = ExpertRollout()
    obs, info = env.reset(seed=seed)
    expert.reset(seed)
    noise_rng = np.random.default_rng([int(seed), 0xDA27])
    space = env.action_space
    run.max_score = info.get("score")
    for _ in range(max_steps):
        action = expert.act(obs, info)
        run.obs.append(obs)
        run.actions.append(action)
        if "sim_state" in info:
            run.sim_states.append(np.asarray(info["sim_state"], np.float64))
        executed = action
        if dart_noise > 0:
            noisy = np.asarray(action, np.float64) + noise_rng.normal(0.0, dart_noise, np.shape(action)) * (space.high - space.low) / 2
            executed = np.clip(noisy, space.low, space.high).astype(np.asarray(action).dtype)
            run.executed.append(executed)
        obs, _, terminated, truncated, info = env.step(executed)
        if "pushed" in info:
            run.pushed.append(bool(info["pushed"]))
        run.success = run.success or bool(info.get("success", False))
        if run.max_score is not None:
            run.max_score = max(run.max_score, info["score"])
        if terminated or truncated:
            break
    run.last_info = info
    return run


def parse_seeds(spec: str) -> list[int]:
    """'A:B' (B exclusive) or a comma list, e.g. '100000:100050' or '3,7,9'."""
    if ":" in spec:
        start, stop = (int(v) for v in spec.split(":"))
        return list(range(start, stop))
    return [int(v) for v in spec.split(",") if v]


STYLE_SEED_SALT = 0x5171E
"""Salt of the per-episode style draw ([seed, salt]): independent of the expert's and DART's RNGs."""


def parse_styles(spec: str, suite: Suite) -> dict[str, float]:
    """`--styles`: 'all', 'A,B' (equal weights) or 'A:0.7,B:0.3' -> {style: weight}, weights summing to 1.

    Errors are one line that names the flag: unknown or repeated styles, weights that are not
    positive finite numbers, or a suite whose expert has no styles.
    """
    if not suite.styles:
        raise ValueError(f"--styles: the {suite.name} expert has one way only, no styles")
    known = ", ".join(suite.styles)
    spec = spec.strip()
    if spec == "all":
        return {style: 1.0 / len(suite.styles) for style in suite.styles}
    weights: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, value = item.strip().partition(":")
        name = name.strip()
        if name not in suite.styles:
            raise ValueError(f"--styles: unknown style {name!r} for {suite.name}; known: {known} (or 'all')")
        if name in weights:
            raise ValueError(f"--styles: style {name!r} is listed twice in {spec!r}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            weight = float("nan")
        if not (weight > 0.0 and np.isfinite(weight)):
            raise ValueError(f"--styles: the weight of {name!r} must be a positive number, got {value.strip()!r}")
        weights[name] = weight
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def draw_style(seed: int, mix: Mapping[str, float], styles: tuple[str, ...]) -> int:
    """The style id (index into `styles`) of the episode with this seed, drawn from `mix`."""
    names = list(mix)
    p = np.array([mix[name] for name in names], dtype=np.float64)
    pick = np.random.default_rng([int(seed), STYLE_SEED_SALT]).choice(len(names), p=p / p.sum())
    return styles.index(names[int(pick)])


def collect_demos(
    suite: Suite,
    episodes_per_task: int,
    seed_start: int = 0,
    keep_failures: bool = False,
    max_attempts_factor: int = 3,
    progress: bool = True,
    dart_noise: float = 0.0,
    perturb: str | None = None,
    styles: Mapping[str, float] | None = None,
    frame_store: str | os.PathLike[str] | None = None,
) -> Episodes:
    """Run each task's expert until `episodes_per_task` episodes are kept (or attempts run out).

    `dart_noise` and `perturb` make recovery data; `styles` ({style: weight}, e.g. from
    `parse_styles`) mixes the expert's styles per episode (see the module docstring).
    `frame_store` (image suites): a new folder to which each kept episode's camera frames are
    written when it ends; the result then reads its frames from there (keep the folder until the
    episodes are saved). None: frames stay in memory."""
    from lwd.envs.perturb import apply_perturbation, parse_perturbation

    if episodes_per_task <= 0:
        raise ValueError(f"episodes_per_task must be positive, got {episodes_per_task}")
    if not 0.0 <= dart_noise < 10.0:
        raise ValueError(f"dart_noise is a std in half action ranges, e.g. 0.1; got {dart_noise}")
    perturb = None if parse_perturbation(perturb) is None else perturb
    if styles is not None:
        unknown = [name for name in styles if name not in suite.styles]
        if unknown or not styles or min(styles.values()) <= 0:
            raise ValueError(f"styles must map some of {suite.name}'s styles ({', '.join(suite.styles) or 'none'}) "
                             f"to positive weights, got {dict(styles)}")
    style_counts: dict[str, int] = {name: 0 for name in styles or {}}
    spool = None
    if frame_store is not None and suite.image_keys:
        from lwd.data.frames import FrameSpool

        spool = FrameSpool(frame_store, dict(suite.images))
    kept: list[dict[str, np.ndarray]] = []
    seeds: list[int] = []
    attempts: dict[str, int] = {}
    started = time.perf_counter()
    bar = tqdm(total=episodes_per_task * len(suite.tasks), desc=f"demos {suite.name}", disable=not progress, unit="ep")
    for task_id, task in enumerate(suite.tasks):
        env = apply_perturbation(suite.make_env(task, terminate_on_success=True), perturb)
        expert = suite.make_expert(task)
        style_experts = {name: suite.make_expert(task, name) for name in styles or {}}
        n_kept, seed = 0, seed_start
        while n_kept < episodes_per_task and seed < seed_start + max_attempts_factor * episodes_per_task:
            style_id = None if styles is None else draw_style(seed, styles, suite.styles)
            if style_id is not None:
                expert = style_experts[suite.styles[style_id]]
            run = rollout_expert(env, expert, seed, suite.max_episode_steps, dart_noise)
            if run.success or keep_failures:
                episode = {
                    **_stack_observations(run.obs, suite.image_keys),
                    "action": np.asarray(run.actions, np.float32),
                    "task": np.full(run.steps, task_id, np.int64),
                }
                if len(run.sim_states) == run.steps:
                    episode["sim_state"] = np.stack(run.sim_states)
                # what a dynamics model needs beyond the labels: obs[t+1] followed from executed_action[t],
                # not action[t], and from no action at all where pushed[t]
                if run.executed:
                    episode["executed_action"] = np.asarray(run.executed, np.float32)
                if len(run.pushed) == run.steps:
                    episode["pushed"] = np.asarray(run.pushed, np.bool_)
                if style_id is not None:
                    episode["style"] = np.full(run.steps, style_id, np.int64)
                    style_counts[suite.styles[style_id]] += 1
                if spool is not None:  # to disk now: memory keeps this episode's low-dim arrays only
                    for key in suite.image_keys:
                        spool.append(key, episode.pop(key))
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
        "dart_noise": dart_noise,
        "perturbation": perturb or "none",
    }
    if styles is not None:
        attrs.update(styles=list(suite.styles), style_mix=dict(styles), style_counts=style_counts)
    if spool is None:
        return Episodes.from_list(kept, attrs=attrs, image_keys=suite.image_keys)
    low_dim = Episodes.from_list(kept, attrs=attrs)
    return Episodes(low_dim.data, low_dim.episode_ends, low_dim.attrs, frames=spool.frames())


def write_demos(suite: Suite, out: str | os.PathLike[str], episodes_per_task: int, **options: Any) -> Episodes:
    """`collect_demos` saved to `out` (a zarr store); returns the saved episodes.

    On an image suite the frames go to a spool beside `out` as each episode ends, are copied into
    `out` block by block, and the spool is removed: the collection never holds the dataset's frames.
    The episodes returned then read their frames from `out`."""
    out = Path(out)
    if not suite.image_keys:
        episodes = collect_demos(suite, episodes_per_task, **options)
        episodes.save(out)
        return episodes
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.frames-") as spool:
        collect_demos(suite, episodes_per_task, frame_store=Path(spool) / "frames.zarr", **options).save(out)
    return Episodes.load(out)


def _stack_observations(observations: list[Any], image_keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """An episode's observations as store keys: "obs" (T, Do) float32, and on an image suite (dict
    observations) each image key's frames (T, H, W, 3) uint8."""
    if not image_keys:
        return {"obs": np.asarray(observations, np.float32)}
    stacked = {"obs": np.asarray([o["obs"] for o in observations], np.float32)}
    for key in image_keys:
        stacked[key] = np.asarray([o[key] for o in observations], np.uint8)
    return stacked
