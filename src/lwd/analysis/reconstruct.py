"""Behaviour reconstruction: can the VAE's latents reproduce a demonstration in the real simulator?

`lwd reconstruct RUN --data DEMOS`: for each demonstration (use ones the run was not trained on,
e.g. `lwd demos SUITE --seed-start 5000`), encode its consecutive H-step segments (posterior
means), decode each into a policy, and run the policies in the real env from the demonstration's
own start (the env is reset with the demonstration's seed; the first observation is checked
against the recorded one): segment j's policy acts during steps [jH, (j+1)H), the last one beyond.
Reported per task: success, and how far the run's states stray from the demonstration's (RMS over
the steps both have, in the normaliser's [-1, 1] units). This separates what the decoder can
express (here) from what the prior samples (`lwd eval`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lwd.checkpoint import load_model
from lwd.data import Episodes
from lwd.data.keys import ACTION, OBS, OBS_HISTORY, TASK
from lwd.methods.base import WeightGenerator, weight_generator_of
from lwd.methods.target_mlp import fold_affine, numpy_mlp_forward
from lwd.suites import make_suite


def _raw_policies(generator: WeightGenerator, theta: torch.Tensor) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Decoded weights (N, P) -> N MLPs as NumPy layers on raw observations and actions (the
    normalisers folded in, as `LWDPolicy` runs them), for `numpy_mlp_forward`."""
    model, k = generator.method, generator.policy_obs_steps
    obs_scale, obs_shift = model.normalizer.affine(OBS)
    act_scale, act_shift = model.normalizer.affine(ACTION, inverse=True)
    fold = (np.tile(obs_scale, k), np.tile(obs_shift, k), act_scale, act_shift)
    return [fold_affine([(w[0].numpy(), b[0, 0].numpy()) for w, b in generator.target.unflatten(t[None])], *fold)
            for t in theta]


def reconstruct(run_dir: str | Path, data: str | Path, episodes_per_task: int = 10, env: str | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Reconstruct up to `episodes_per_task` demonstrations of each task; returns per-episode and per-task figures."""
    model = load_model(run_dir)
    generator = weight_generator_of(model)
    if generator.frame_encoder is not None:
        raise ValueError(f"{run_dir} reads camera frames, and reconstruction replays decoded policies on observations "
                         "alone; its latents can be mapped with lwd latents")
    episodes = Episodes.load(data)
    seeds = episodes.attrs.get("seeds")
    if not isinstance(seeds, list) or len(seeds) != episodes.num_episodes:
        raise ValueError(f"{data} does not record each episode's seed (attrs['seeds']); reconstruction needs demos "
                         "written by `lwd demos`, whose seeds reset the env to each demonstration's start")
    suite = make_suite(env or episodes.attrs.get("suite") or model.info.suite)
    names = list(episodes.attrs.get("tasks") or suite.tasks)
    task_ids = episodes.episode_tasks() if TASK in episodes.data else np.zeros(episodes.num_episodes, np.int64)
    chosen: list[int] = []
    for name in dict.fromkeys(names[int(t)] for t in task_ids):
        chosen += [i for i in range(episodes.num_episodes) if names[int(task_ids[i])] == name][:episodes_per_task]
    dataset = generator.segments(episodes)
    horizon, k, target = generator.horizon, generator.policy_obs_steps, generator.target
    rows = []
    for index in tqdm(chosen, desc=f"reconstruct {suite.name}", unit="ep", disable=not progress):
        start, length = int(episodes.episode_starts[index]), int(episodes.lengths[index])
        demo = np.asarray(episodes.data[OBS][start : start + length], np.float32)
        anchors = np.arange(start, start + length, horizon)
        theta = generator.decode(generator.encode(dataset.sample_batch(anchors)))  # (segments, P)
        policies = _raw_policies(generator, theta)
        task = names[int(task_ids[index])]
        environment = suite.make_env(task)
        try:
            obs, _ = environment.reset(seed=int(seeds[index]))
            start_matches = bool(np.allclose(obs, demo[0], atol=1e-5))
            history = [np.asarray(obs, np.float32)] * k
            visited, success = [np.asarray(obs, np.float32)], False
            for t in range(suite.max_episode_steps):
                layers = policies[min(t // horizon, len(policies) - 1)]
                action = numpy_mlp_forward(target, layers, np.concatenate(history[-k:]))
                obs, _, terminated, truncated, info = environment.step(action)
                obs = np.asarray(obs, np.float32)
                history = [*history[1:], obs]
                visited.append(obs)
                success = success or bool(info.get("success", False))
                if terminated or truncated:
                    break
        finally:
            environment.close()
        both = min(len(visited), length)
        run_norm = model.normalizer.normalize(OBS, np.stack(visited[:both]))
        demo_norm = model.normalizer.normalize(OBS, demo[:both])
        rows.append({"task": task, "seed": int(seeds[index]), "success": success, "steps": len(visited) - 1,
                     "demo_steps": length, "segments": len(policies), "start_matches_demo": start_matches,
                     "state_rmse": float(np.sqrt(np.mean((run_norm - demo_norm) ** 2))),
                     "final_state_rmse": float(np.sqrt(np.mean((run_norm[-1] - demo_norm[-1]) ** 2)))})
    per_task = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        per_task[task] = {"success_rate": float(np.mean([r["success"] for r in mine])), "episodes": len(mine),
                          "state_rmse": float(np.mean([r["state_rmse"] for r in mine]))}
    return {"run_dir": str(run_dir), "data": str(data), "suite": suite.name, "horizon": horizon,
            "mean_success": float(np.mean([v["success_rate"] for v in per_task.values()])),
            "mean_state_rmse": float(np.mean([v["state_rmse"] for v in per_task.values()])),
            "starts_matched": all(r["start_matches_demo"] for r in rows), "per_task": per_task, "episodes": rows}


def segment_drift(run_dir: str | Path, data: str | Path, episodes: int = 10, latents: str = "posterior", seed: int = 0,
                  env: str | None = None, progress: bool = True) -> dict[str, Any]:
    """How a decoded policy behaves off its own segment: for every H-step segment of up to `episodes`
    demonstrations, put the env in the demonstrated state at the segment's start (reset with the
    demo's seed, then replay its actions), run the segment's decoded policy closed-loop for H steps,
    and measure how far its states drift from the demonstrated ones (RMS in the normaliser's [-1, 1]
    units, per step after the start).

    latents: "posterior" decodes each segment's posterior mean (what the decoder can express);
    "prior" decodes a latent the prior generates for the segment's observation history (what
    `lwd eval` runs). Replaying needs a deterministic simulator and demos without perturbations;
    segments whose replayed start differs from the recorded one are counted and left out."""
    if latents not in ("posterior", "prior"):
        raise ValueError(f"latents must be 'posterior' or 'prior', got {latents!r}")
    model = load_model(run_dir)
    generator = weight_generator_of(model)
    demos = Episodes.load(data)
    seeds = demos.attrs.get("seeds")
    if not isinstance(seeds, list) or len(seeds) != demos.num_episodes:
        raise ValueError(f"{data} does not record each episode's seed (attrs['seeds']); use demos written by `lwd demos`")
    suite = make_suite(env or demos.attrs.get("suite") or model.info.suite)
    names = list(demos.attrs.get("tasks") or suite.tasks)
    task_ids = demos.episode_tasks() if TASK in demos.data else np.zeros(demos.num_episodes, np.int64)
    dataset = generator.segments(demos)
    horizon, k, target = generator.horizon, generator.policy_obs_steps, generator.target
    noise = torch.Generator().manual_seed(seed)
    curves: list[np.ndarray] = []
    skipped = 0
    for index in tqdm(range(min(episodes, demos.num_episodes)), desc=f"segment drift ({latents})", unit="ep",
                      disable=not progress):
        start, length = int(demos.episode_starts[index]), int(demos.lengths[index])
        demo_obs = np.asarray(demos.data[OBS][start : start + length], np.float32)
        demo_act = np.asarray(demos.data[ACTION][start : start + length], np.float32)
        offsets = np.arange(0, length - horizon, horizon)  # segments with H demonstrated steps after their start
        if not len(offsets):
            continue
        batch = dataset.sample_batch(start + offsets)
        if latents == "posterior":
            z = generator.encode(batch)
        else:
            z = generator.sample(batch.get(TASK), batch.get(OBS_HISTORY), noise)
        theta = generator.decode(z)
        task = names[int(task_ids[index])]
        environment = suite.make_env(task)
        try:
            for j, offset in enumerate(offsets):
                obs, _ = environment.reset(seed=int(seeds[index]))
                for t in range(offset):
                    obs, *_ = environment.step(demo_act[t])
                if not np.allclose(np.asarray(obs, np.float32), demo_obs[offset], atol=1e-4):
                    skipped += 1
                    continue
                layers = _raw_policies(generator, theta[j : j + 1])[0]
                history = [demo_obs[max(offset - i, 0)] for i in range(k - 1, -1, -1)]
                visited = []
                for _ in range(horizon):
                    action = numpy_mlp_forward(target, layers, np.concatenate(history[-k:]))
                    obs, _, terminated, truncated, _ = environment.step(action)
                    obs = np.asarray(obs, np.float32)
                    history = [*history[1:], obs]
                    visited.append(obs)
                    if terminated or truncated:
                        break
                run_norm = model.normalizer.normalize(OBS, np.stack(visited))
                demo_norm = model.normalizer.normalize(OBS, demo_obs[offset + 1 : offset + 1 + len(visited)])
                curve = np.full(horizon, np.nan)
                curve[: len(visited)] = np.sqrt(np.mean((run_norm - demo_norm) ** 2, axis=1))
                curves.append(curve)
        finally:
            environment.close()
    if not curves:
        raise ValueError(f"no segment of {data} could be replayed from its recorded start; drift needs clean, deterministic demos")
    stacked = np.stack(curves)  # (segments, H)
    return {"run_dir": str(run_dir), "data": str(data), "latents": latents, "horizon": horizon, "segments": len(curves),
            "segments_not_replayable": skipped, "drift_per_step": np.nanmean(stacked, 0).round(6).tolist(),
            "drift_at_h": float(np.nanmean(stacked[:, -1])), "drift_at_h_median": float(np.nanmedian(stacked[:, -1]))}
