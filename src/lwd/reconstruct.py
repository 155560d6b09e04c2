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
from lwd.data.keys import ACTION, ACTIONS, MASK, OBS, STATES, TASK
from lwd.suites import make_suite


def _check_reconstructs(model: Any, run_dir: str | Path) -> None:
    if getattr(model, "vae", None) is None or getattr(model, "target", None) is None:
        raise ValueError(f"{run_dir} holds a {model.name} run; reconstruction needs a method with an encoder and a "
                         "decoded policy (lwd, warpd, lcmlp)")


def reconstruct(run_dir: str | Path, data: str | Path, episodes_per_task: int = 10, env: str | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Reconstruct up to `episodes_per_task` demonstrations of each task; returns per-episode and per-task figures."""
    from lwd.methods.lwd.target_mlp import fold_affine, numpy_mlp_forward

    model = load_model(run_dir)
    _check_reconstructs(model, run_dir)
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
    dataset = model.segment_dataset(episodes, "pad")
    horizon, k = model.cfg.horizon, model.cfg.policy_obs_steps
    obs_scale, obs_shift = model.normalizer.affine(OBS)
    act_scale, act_shift = model.normalizer.affine(ACTION, inverse=True)
    fold = (np.tile(obs_scale, k), np.tile(obs_shift, k), act_scale, act_shift)
    rows = []
    for index in tqdm(chosen, desc=f"reconstruct {suite.name}", unit="ep", disable=not progress):
        start, length = int(episodes.episode_starts[index]), int(episodes.lengths[index])
        demo = np.asarray(episodes.data[OBS][start : start + length], np.float32)
        anchors = np.arange(start, start + length, horizon)
        batch = dataset.sample_batch(anchors)
        with torch.no_grad():
            mu, _ = model.vae.encoder(batch[STATES], batch[ACTIONS], batch[MASK], batch.get(TASK))
            theta = model.vae.decoder(mu)  # (segments, P)
        policies = [fold_affine([(w[0].numpy(), b[0, 0].numpy()) for w, b in model.target.unflatten(t[None])], *fold)
                    for t in theta]
        task = names[int(task_ids[index])]
        environment = suite.make_env(task)
        try:
            obs, _ = environment.reset(seed=int(seeds[index]))
            start_matches = bool(np.allclose(obs, demo[0], atol=1e-5))
            history = [np.asarray(obs, np.float32)] * k
            visited, success = [np.asarray(obs, np.float32)], False
            for t in range(suite.max_episode_steps):
                layers = policies[min(t // horizon, len(policies) - 1)]
                action = numpy_mlp_forward(model.target, layers, np.concatenate(history[-k:]))
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
