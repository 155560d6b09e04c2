"""One training loop for every method: stages, AdamW + cosine schedule, EMA, checkpoints, resume.

A method lists its stages (LWD: VAE, then prior; BC and DP: one). Each stage optimises one
sub-module with its own optimizer and EMA; at the end of a stage the EMA weights replace the raw
ones, so the next stage (and evaluation) builds on the averaged model.

Resume is exact: the training state stores weights, optimizer, LR schedule, EMA, the NumPy batch
sampler and torch's RNG, so an interrupted run resumed with the same settings ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
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
    parse_run_config,
    read_train_state,
    save_model,
    write_train_state,
)
from lwd.config import RunConfig, TrainConfig
from lwd.data import Episodes
from lwd.ema import EMA
from lwd.methods.base import Method, Stage

LOG_EVERY = 50


class TrainingInterrupted(RuntimeError):
    """Raised when `stop_after_steps` is reached (used to test resume)."""


@dataclass
class ResumePoint:
    """Where training starts: stage index and step, the saved state to restore there, the log so far."""

    stage: int = 0
    step: int = 0
    saved: tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]] | None = None
    log: dict[str, Any] = field(default_factory=lambda: {"stages": {}, "seconds": {}, "evals": []})

    def restores(self, stage_index: int) -> bool:
        """Whether the stage at `stage_index` continues mid-way from the saved optimizer and EMA."""
        return self.saved is not None and stage_index == self.stage and self.step > 0


def resume_point(out_dir: Path, method: Method, run: RunConfig, rng: np.random.Generator) -> ResumePoint:
    """Load the latest training state of `out_dir` into `method` and the RNGs, for `--resume`.

    Refused when there is no state or when it was started with other settings than `run`."""
    saved = read_train_state(out_dir)
    if saved is None:
        raise CheckpointError(f"--resume: {out_dir} has no training state to resume from")
    info, files = saved
    if parse_run_config(info.get("run"), out_dir / "train_state") != run:
        raise CheckpointError(f"--resume: the settings differ from those {out_dir} was started with; use a new --out")
    load_state(method, files["model"], out_dir / "train_state")
    rng.bit_generator.state = info["numpy_rng"]
    torch.set_rng_state(files["rng"]["torch"])
    return ResumePoint(info["stage"], info["step"], saved, info["log"])


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
    if train_cfg.num_threads > 0:
        torch.set_num_threads(train_cfg.num_threads)
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    stages = method.stages(train_cfg, episodes)  # datasets are checked here, before anything is written
    start = resume_point(out_dir, method, run, rng) if resume else ResumePoint()
    out_dir.mkdir(parents=True, exist_ok=True)
    log = start.log
    budget = _StepBudget(stop_after_steps)
    with _StopRequests() as stop:
        for si, stage in enumerate(stages):
            if si < start.stage:
                continue
            t0 = time.perf_counter()
            loop = _StageLoop(method, stage, train_cfg)
            if start.restores(si):
                loop.restore(*start.saved)  # type: ignore[misc]
            loop.run(si, out_dir, run, rng, log, progress, budget, eval_hook, eval_every, stop)
            log["seconds"][stage.name] = log["seconds"].get(stage.name, 0.0) + time.perf_counter() - t0
            log.setdefault("samples", {})[stage.name] = stage.steps * stage.batch_size
            _save_state(out_dir, method, run, si + 1, 0, None, rng, log)
    method.eval()
    save_model(out_dir, method, run)
    atomic_write_json(out_dir / "train_log.json", log)
    _plot_losses(log, out_dir / "train_loss.png")
    return log


class _StopRequests:
    """Ctrl-C (SIGINT) during training: finish the current step, save a training state, then stop.

    Stopping between steps keeps the saved state exact, so `--resume` ends with the weights an
    uninterrupted run would have. Active only in the main thread (signal handlers live there)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _StepBudget:
    """Counts optimisation steps across stages; `stop_after_steps` interrupts a run (to test resume)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.done = 0

    def spend(self) -> bool:
        """Count one step; True when the budget is used up."""
        self.done += 1
        return self.limit is not None and self.done >= self.limit


class _StageLoop:
    """One stage: AdamW with a warm-up cosine schedule, gradient clipping at 1, EMA, checkpoints."""

    def __init__(self, method: Method, stage: Stage, train_cfg: TrainConfig) -> None:
        self.method, self.stage, self.train_cfg = method, stage, train_cfg
        stage.prepare()
        self.params = [p for p in stage.module.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=stage.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
        self.sched = get_cosine_schedule_with_warmup(self.opt, min(train_cfg.warmup_steps, max(stage.steps // 10, 1)), stage.steps)
        self.ema = EMA(stage.module, train_cfg.ema_power, train_cfg.ema_max_decay)
        self.first = 0

    def restore(self, info: dict[str, Any], files: dict[str, dict[str, torch.Tensor]]) -> None:
        optimizer_from_tensors(self.opt, files["optimizer"], info["optimizer"])
        self.sched.load_state_dict(info["lr_schedule"])
        self.ema.shadow = files["ema"]
        self.ema.step = info["ema_step"]
        self.first = info["step"]

    def run(self, index: int, out_dir: Path, run: RunConfig, rng: np.random.Generator, log: dict[str, Any], progress: bool,
            budget: _StepBudget, eval_hook: Callable[[Method, str, int], dict[str, float]] | None, eval_every: int,
            stop: _StopRequests) -> None:
        """Steps from `first` to the end of the stage; then the EMA weights replace the raw ones."""
        method, stage, ema = self.method, self.stage, self.ema
        history = log["stages"].setdefault(stage.name, [])
        method.train()
        bar = tqdm(range(self.first, stage.steps), desc=f"train {method.name}:{stage.name}", disable=not progress,
                   initial=self.first, total=stage.steps)
        for step in bar:
            batch = stage.sample_batch(rng)
            loss, metrics = stage.loss(batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.sched.step()
            ema.update()
            done = step + 1
            if done % LOG_EVERY == 0 or done == stage.steps:
                history.append({"step": done, "loss": loss.item(), **metrics})
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if eval_hook is not None and eval_every > 0 and done % eval_every == 0 and done < stage.steps:
                log["evals"].append({"stage": stage.name, "step": done, **_with_ema(method, stage, ema, eval_hook)})
            spent = budget.spend()
            if done % self.train_cfg.checkpoint_every == 0 and done < stage.steps:
                _save_state(out_dir, method, run, index, done, self, rng, log)
            if stop.requested and done < stage.steps:
                bar.close()
                _save_state(out_dir, method, run, index, done, self, rng, log)
                raise KeyboardInterrupt(f"training state saved at {stage.name} step {done} in {out_dir}")
            if spent and done < stage.steps:
                bar.close()
                _save_state(out_dir, method, run, index, done, self, rng, log)
                raise TrainingInterrupted(f"stopped after {budget.done} steps at {stage.name}:{done}")
        bar.close()
        ema.copy_to_module()


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


def _save_state(out_dir: Path, method: Method, run: RunConfig, stage: int, step: int, loop: _StageLoop | None,
                rng: np.random.Generator, log: dict) -> None:
    """A complete training state; `loop` (mid-stage) adds the optimizer, LR schedule and EMA."""
    files: dict[str, dict[str, torch.Tensor]] = {"model": method.state_dict(), "rng": {"torch": torch.get_rng_state()}}
    info: dict[str, Any] = {"numpy_rng": rng.bit_generator.state, "log": log, "run": run.to_json()}
    if loop is not None:
        files["optimizer"], info["optimizer"] = optimizer_to_tensors(loop.opt)
        info["lr_schedule"] = loop.sched.state_dict()
        files["ema"] = loop.ema.shadow
        info["ema_step"] = loop.ema.step
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
