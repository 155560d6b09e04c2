"""One training loop for every method: stages, AdamW + cosine schedule, EMA, checkpoints, resume.

A method lists its stages (LWD: VAE, then prior; BC and DP: one). Each stage optimises one
sub-module with its own optimizer and EMA; at the end of a stage the EMA weights replace the raw
ones, so the next stage (and evaluation) builds on the averaged model.

Resume is exact: the training state stores weights, optimizer, LR schedule, EMA, the NumPy batch
sampler and torch's RNG, so an interrupted run resumed with the same settings ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from tqdm.auto import tqdm

from lwd.checkpoint import (
    CheckpointError,
    atomic_write_json,
    load_state,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_train_state,
    save_model,
    write_train_state,
)
from lwd.config import RunConfig, TrainConfig
from lwd.data import Episodes
from lwd.ema import EMA
from lwd.methods.base import Method

LOG_EVERY = 50


class TrainingInterrupted(RuntimeError):
    """Raised when `stop_after_steps` is reached (used to test resume)."""


def train(
    method: Method,
    episodes: Episodes,
    train_cfg: TrainConfig,
    run: RunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    eval_hook: Callable[[Method, str, int], dict[str, float]] | None = None,
    eval_every: int = 0,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Train `method` on `episodes`; writes the run directory and returns the training log."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if train_cfg.num_threads > 0:
        torch.set_num_threads(train_cfg.num_threads)
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    stages = method.stages(train_cfg, episodes)

    start_stage, start_step, saved = 0, 0, None
    log: dict[str, Any] = {"stages": {}, "seconds": {}, "evals": []}
    if resume:
        saved = read_train_state(out_dir)
        if saved is None:
            raise CheckpointError(f"--resume: {out_dir} has no training state to resume from")
        info, files = saved
        if info.get("run") != json.loads(json.dumps(run.__dict__)):
            raise CheckpointError(f"--resume: the settings differ from those {out_dir} was started with; use a new --out")
        start_stage, start_step = info["stage"], info["step"]
        load_state(method, files["model"], out_dir / "train_state")
        rng.bit_generator.state = info["numpy_rng"]
        torch.set_rng_state(files["rng"]["torch"])
        log = info["log"]
    total_done = 0
    for si, stage in enumerate(stages):
        if si < start_stage:
            continue
        t0 = time.perf_counter()
        stage.prepare()
        params = [p for p in stage.module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=stage.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
        sched = get_cosine_schedule_with_warmup(opt, min(train_cfg.warmup_steps, max(stage.steps // 10, 1)), stage.steps)
        ema = EMA(stage.module, train_cfg.ema_power, train_cfg.ema_max_decay)
        first = 0
        if saved is not None and si == start_stage and start_step > 0:
            info, files = saved
            optimizer_from_tensors(opt, files["optimizer"], info["optimizer"])
            sched.load_state_dict(info["lr_schedule"])
            ema.shadow = files["ema"]
            ema.step = info["ema_step"]
            first = start_step
        history = log["stages"].setdefault(stage.name, [])
        method.train()
        bar = tqdm(range(first, stage.steps), desc=f"train {method.name}:{stage.name}", disable=not progress, initial=first, total=stage.steps)
        for step in bar:
            batch = stage.sample_batch(rng)
            loss, metrics = stage.loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            ema.update()
            done = step + 1
            if done % LOG_EVERY == 0 or done == stage.steps:
                history.append({"step": done, "loss": loss.item(), **metrics})
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if eval_hook is not None and eval_every > 0 and done % eval_every == 0 and done < stage.steps:
                log["evals"].append({"stage": stage.name, "step": done, **_with_ema(method, stage, ema, eval_hook)})
            total_done += 1
            if done % train_cfg.checkpoint_every == 0 and done < stage.steps:
                _save_state(out_dir, method, run, si, done, opt, sched, ema, rng, log)
            if stop_after_steps is not None and total_done >= stop_after_steps and done < stage.steps:
                bar.close()
                _save_state(out_dir, method, run, si, done, opt, sched, ema, rng, log)
                raise TrainingInterrupted(f"stopped after {total_done} steps at {stage.name}:{done}")
        bar.close()
        ema.copy_to_module()
        log["seconds"][stage.name] = log["seconds"].get(stage.name, 0.0) + time.perf_counter() - t0
        _save_state(out_dir, method, run, si + 1, 0, None, None, None, rng, log)
    method.eval()
    save_model(out_dir, method, run)
    atomic_write_json(out_dir / "train_log.json", log)
    _plot_losses(log, out_dir / "train_loss.png")
    return log


def _with_ema(method: Method, stage: Any, ema: EMA, hook: Callable[[Method, str, int], dict[str, float]]) -> dict[str, float]:
    """Evaluate with the EMA weights swapped in, then restore the raw ones."""
    raw = {k: v.clone() for k, v in stage.module.state_dict().items()}
    ema.copy_to_module()
    method.eval()
    try:
        return hook(method, stage.name, ema.step)
    finally:
        stage.module.load_state_dict(raw)
        method.train()


def _save_state(out_dir: Path, method: Method, run: RunConfig, stage: int, step: int, opt: Any, sched: Any, ema: EMA | None, rng: np.random.Generator, log: dict) -> None:
    files: dict[str, dict[str, torch.Tensor]] = {"model": method.state_dict(), "rng": {"torch": torch.get_rng_state()}}
    info: dict[str, Any] = {"numpy_rng": rng.bit_generator.state, "log": log, "run": json.loads(json.dumps(run.__dict__))}
    if opt is not None:
        files["optimizer"], info["optimizer"] = optimizer_to_tensors(opt)
        info["lr_schedule"] = sched.state_dict()
    if ema is not None:
        files["ema"] = ema.shadow
        info["ema_step"] = ema.step
    write_train_state(out_dir, stage, step, files, info)


def _plot_losses(log: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [(name, rows) for name, rows in log["stages"].items() if rows]
    if not stages:
        return
    fig, axes = plt.subplots(1, len(stages), figsize=(4.5 * len(stages), 3.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], stages):
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
        ax.set_yscale("log")
        ax.set_title(f"stage: {name}")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
