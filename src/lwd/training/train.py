"""One training loop for every method: stages, AdamW + cosine schedule, EMA, checkpoints, resume.

A method lists its stages (LWD: VAE, then prior; BC and DP: one). Each stage optimises one
sub-module with its own optimizer and EMA; at the end of a stage the EMA weights replace the raw
ones, so the next stage (and evaluation) builds on the averaged model.

Resume is exact: the training state stores weights, optimizer, LR schedule, EMA, the NumPy batch
sampler and torch's RNG, so an interrupted run resumed with the same settings ends with the same
weights as an uninterrupted one. Ctrl-C and SIGTERM save a state between steps before stopping;
after a SIGKILL, `--resume` starts from the last checkpoint (`checkpoint_every` steps).

Devices and processes (see `lwd.training.hardware`): accelerate places the method and its datasets on the
device once, wraps each stage's objective in DDP when launched as several processes, and handles
mixed precision. Every rank draws the same global batch of indices from the shared NumPy RNG and
trains on its own slice of it (then on `grad_accum` micro-batches of that slice), so a step sees
the same samples for any world size; DDP averages the gradients. Torch's RNG (diffusion noise,
latent samples) is seeded per rank (rank 0 keeps the single-process stream), so a run is
reproducible for a given world size. Rank 0 alone logs, shows progress and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
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
from lwd.methods.base import Method, Stage
from lwd.training.ema import EMA
from lwd.training.hardware import Hardware, make_accelerator

LOG_EVERY = 50
RANK_SEED_STRIDE = 1_000_003
"""Rank r seeds torch with seed + r * stride: independent noise per rank, rank 0 as a single process."""
STOP_SYNC_EVERY = 10
"""With several processes, ranks agree on a stop request (Ctrl-C, SIGTERM) every this many steps."""


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


def resume_point(out_dir: Path, method: Method, run: RunConfig, rng: np.random.Generator, rank: int = 0,
                 world: int = 1) -> ResumePoint:
    """Load the latest training state of `out_dir` into `method` and the RNGs, for `--resume`.

    Refused when there is no state, when it was started with other settings than `run`, or by
    another number of processes (each rank's noise stream is part of the state)."""
    saved = read_train_state(out_dir)
    if saved is None:
        raise CheckpointError(f"--resume: {out_dir} has no training state to resume from")
    info, files = saved
    if parse_run_config(info.get("run"), out_dir / "train_state") != run:
        raise CheckpointError(f"--resume: the settings differ from those {out_dir} was started with; use a new --out")
    saved_world = int(info.get("world_size", 1))
    if saved_world != world:
        raise CheckpointError(f"--resume: {out_dir} was trained by {saved_world} process(es) and this launch has {world}; "
                              f"resume with {saved_world} (each process's random stream is part of the training state)")
    load_state(method, files["model"], out_dir / "train_state")
    rng.bit_generator.state = info["numpy_rng"]
    torch.set_rng_state(files["rng"][_rng_key("torch", rank)])
    if _rng_key("cuda", rank) in files["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(files["rng"][_rng_key("cuda", rank)])
    return ResumePoint(info["stage"], info["step"], saved, info["log"])


def _rng_key(kind: str, rank: int) -> str:
    """Name of a rank's RNG state in the training state (rank 0 keeps the single-process name)."""
    return kind if rank == 0 else f"{kind}.rank{rank}"


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
    hardware: Hardware | None = None,
) -> dict[str, Any]:
    """Train `method` on `episodes`; writes the run directory and returns the training log.

    The trained method is returned to the CPU (where a robot runs the per-step policy)."""
    out_dir = Path(out_dir)
    hardware = hardware or Hardware()
    if train_cfg.num_threads > 0:  # the older way to set threads, kept for existing configs
        hardware = Hardware(hardware.device, hardware.precision, train_cfg.num_threads, hardware.grad_accum)
    accel = make_accelerator(hardware)
    rank, world = accel.process_index, accel.num_processes
    torch.manual_seed(train_cfg.seed + rank * RANK_SEED_STRIDE)
    rng = np.random.default_rng(train_cfg.seed)  # the same on every rank: all draw the same global batches
    method.to(accel.device)
    stages = method.stages(train_cfg, episodes)  # datasets are checked here, before anything is written
    start = resume_point(out_dir, method, run, rng, rank, world) if resume else ResumePoint()
    if accel.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
    log = start.log
    log["hardware"] = {"device": "cpu" if accel.device.type == "cpu" else str(accel.device), "processes": world, "precision": hardware.precision,
                       "threads": torch.get_num_threads(), "grad_accum": hardware.grad_accum}
    budget = _StepBudget(stop_after_steps)
    with _StopRequests() as stop:
        for si, stage in enumerate(stages):
            if si < start.stage:
                continue
            t0 = time.perf_counter()
            loop = _StageLoop(method, stage, train_cfg, accel, hardware.grad_accum)
            if start.restores(si):
                loop.restore(*start.saved)  # type: ignore[misc]
            loop.run(si, out_dir, run, rng, log, progress, budget, eval_hook, eval_every, stop)
            log["seconds"][stage.name] = log["seconds"].get(stage.name, 0.0) + time.perf_counter() - t0
            log.setdefault("samples", {})[stage.name] = stage.steps * stage.batch_size
            if stage.report is not None:
                log.setdefault("reports", {})[stage.name] = stage.report()
            _save_state(out_dir, method, run, si + 1, 0, None, rng, log, accel)
    method.eval()
    method.to("cpu")
    if accel.is_main_process:
        save_model(out_dir, method, run)
        atomic_write_json(out_dir / "train_log.json", log)
        _plot_losses(log, out_dir / "train_loss.png")
    accel.wait_for_everyone()
    return log


def fit_stage(method: Method, stage: Stage, train_cfg: TrainConfig, progress: bool = False) -> list[dict[str, float]]:
    """Run one stage in memory, with the optimiser, schedule and EMA of `train` but no run directory,
    checkpoints or signals; the EMA weights replace the raw ones at the end, as in `train`.

    For measuring one part of a method on its own (the latent prior on latents of a known
    distribution) with exactly the training a real run gives it. Returns the logged losses."""
    accel = make_accelerator(Hardware())
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    loop = _StageLoop(method, stage, train_cfg, accel)
    history: list[dict[str, float]] = []
    method.train()
    for step in tqdm(range(stage.steps), desc=f"fit {method.name}:{stage.name}", disable=not progress):
        if stage.on_step is not None:
            stage.on_step(step)
        loss, metrics = loop.step(stage.sample_batch(rng))
        if (step + 1) % LOG_EVERY == 0 or step + 1 == stage.steps:
            history.append({"step": step + 1, **loop.logged(loss, metrics)})
    loop.ema.copy_to_module()
    method.eval()
    return history


class _StopRequests:
    """Ctrl-C (SIGINT) or SIGTERM during training: finish the current step, save a training state, stop.

    Stopping between steps keeps the saved state exact, so `--resume` ends with the weights an
    uninterrupted run would have. Active only in the main thread (signal handlers live there)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._request)
        return self

    def _request(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _StepBudget:
    """Counts optimisation steps across stages; `stop_after_steps` interrupts a run (to test resume)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.done = 0

    def spend(self) -> bool:
        """Count one step; True when the budget is used up."""
        self.done += 1
        return self.limit is not None and self.done >= self.limit


class _Objective(torch.nn.Module):
    """A stage's loss as a module whose parameters are the stage's, so DDP can wrap it: DDP syncs
    gradients for what runs through its `forward`, and a stage's loss calls its sub-modules itself."""

    def __init__(self, module: torch.nn.Module, loss: Callable[[dict[str, torch.Tensor]], Any]) -> None:
        super().__init__()
        self.module = module
        self._loss = loss

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        return self._loss(batch)


class _StageLoop:
    """One stage: AdamW with a warm-up cosine schedule, gradient clipping at 1, EMA, checkpoints."""

    def __init__(self, method: Method, stage: Stage, train_cfg: TrainConfig, accel: Any, grad_accum: int = 1) -> None:
        self.method, self.stage, self.train_cfg, self.accel = method, stage, train_cfg, accel
        stage.prepare()
        self.params = [p for p in stage.module.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=stage.lr, betas=train_cfg.betas, weight_decay=train_cfg.weight_decay)
        self.sched = get_cosine_schedule_with_warmup(self.opt, min(train_cfg.warmup_steps, max(stage.steps // 10, 1)), stage.steps)
        self.ema = EMA(stage.module, train_cfg.ema_power, train_cfg.ema_max_decay)
        self.first = 0
        self.parts = accel.num_processes * grad_accum
        # The schedule is stepped by hand, once per optimiser step, so it is not handed to accelerate.
        self.objective, self.step_opt = accel.prepare(_Objective(stage.module, stage.loss), self.opt)

    def restore(self, info: dict[str, Any], files: dict[str, dict[str, torch.Tensor]]) -> None:
        optimizer_from_tensors(self.opt, files["optimizer"], info["optimizer"])
        self.sched.load_state_dict(info["lr_schedule"])
        self.ema.shadow = {k: v.to(self.method.device) for k, v in files["ema"].items()}
        self.ema.step = info["ema_step"]
        self.first = info["step"]

    def micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """This rank's slice of the global batch, split into the micro-batches it accumulates."""
        if self.parts == 1:
            return [batch]
        rows = {int(v.shape[0]) for v in batch.values()}
        if len(rows) != 1 or next(iter(rows)) % self.parts:
            raise ValueError(f"stage {self.stage.name}: a batch of {sorted(rows)} rows does not split into "
                             f"{self.accel.num_processes} processes x {self.parts // self.accel.num_processes} "
                             "accumulation steps; choose a batch size divisible by their product")
        size = next(iter(rows)) // self.parts
        first = self.accel.process_index * (self.parts // self.accel.num_processes)
        return [{k: v[(first + i) * size:(first + i + 1) * size] for k, v in batch.items()}
                for i in range(self.parts // self.accel.num_processes)]

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """One optimiser step; returns the (local, detached) loss and metrics averaged over micro-batches."""
        accel, parts = self.accel, self.micro_batches(batch)
        self.opt.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        sums: dict[str, Any] = {}
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            with contextlib.nullcontext() if last else accel.no_sync(self.objective):
                loss, metrics = self.objective(part)
                accel.backward(loss / len(parts) if len(parts) > 1 else loss)
            total = loss.detach() if total is None else total + loss.detach()
            for key, value in metrics.items():
                sums[key] = value if key not in sums else sums[key] + value
        accel.clip_grad_norm_(self.params, 1.0)
        self.step_opt.step()
        self.sched.step()
        self.ema.update()
        n = len(parts)
        return total / n, {k: v / n for k, v in sums.items()}  # type: ignore[operator]

    def logged(self, loss: torch.Tensor, metrics: dict[str, Any]) -> dict[str, float]:
        """Loss and metrics as floats, averaged over ranks (a collective: every rank calls it)."""
        values = {"loss": loss, **metrics}
        if self.accel.num_processes > 1:
            values = {k: self.accel.reduce(torch.as_tensor(v, dtype=torch.float32, device=self.accel.device).clone(), "mean")
                      for k, v in values.items()}
        return {k: float(v) for k, v in values.items()}

    def stop_agreed(self, stop: "_StopRequests", done: int) -> bool:
        """Whether to stop after step `done`: the local request alone, or all ranks' at sync points."""
        if self.accel.num_processes == 1:
            return stop.requested
        if done % STOP_SYNC_EVERY:
            return False
        flag = torch.tensor([float(stop.requested)], device=self.accel.device)
        return bool(self.accel.reduce(flag, "sum").item() > 0)

    def run(self, index: int, out_dir: Path, run: RunConfig, rng: np.random.Generator, log: dict[str, Any], progress: bool,
            budget: _StepBudget, eval_hook: Callable[[Method, str, int], dict[str, float]] | None, eval_every: int,
            stop: _StopRequests) -> None:
        """Steps from `first` to the end of the stage; then the EMA weights replace the raw ones."""
        method, stage, ema, accel = self.method, self.stage, self.ema, self.accel
        history = log["stages"].setdefault(stage.name, [])
        method.train()
        bar = tqdm(range(self.first, stage.steps), desc=f"train {method.name}:{stage.name}",
                   disable=not (progress and accel.is_main_process), initial=self.first, total=stage.steps)
        for step in bar:
            if stage.on_step is not None:
                stage.on_step(step)
            loss, metrics = self.step(stage.sample_batch(rng))
            done = step + 1
            if done % LOG_EVERY == 0 or done == stage.steps:
                row = self.logged(loss, metrics)
                history.append({"step": done, **row})
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            if eval_hook is not None and eval_every > 0 and done % eval_every == 0 and done < stage.steps:
                if accel.is_main_process:
                    log["evals"].append({"stage": stage.name, "step": done, **_with_ema(method, stage, ema, eval_hook)})
                accel.wait_for_everyone()
            spent = budget.spend()
            if done % self.train_cfg.checkpoint_every == 0 and done < stage.steps:
                _save_state(out_dir, method, run, index, done, self, rng, log, accel)
            if self.stop_agreed(stop, done) and done < stage.steps:
                bar.close()
                _save_state(out_dir, method, run, index, done, self, rng, log, accel)
                raise KeyboardInterrupt(f"training state saved at {stage.name} step {done} in {out_dir}")
            if spent and done < stage.steps:
                bar.close()
                _save_state(out_dir, method, run, index, done, self, rng, log, accel)
                raise TrainingInterrupted(f"stopped after {budget.done} steps at {stage.name}:{done}")
        bar.close()
        ema.copy_to_module()


def _with_ema(method: Method, stage: Any, ema: EMA, hook: Callable[[Method, str, int], dict[str, float]]) -> dict[str, float]:
    """Evaluate with the EMA weights swapped in, then restore the raw ones. Policies run on the CPU,
    so a method training on a GPU is evaluated as a CPU copy."""
    raw = {k: v.clone() for k, v in stage.module.state_dict().items()}
    ema.copy_to_module()
    method.eval()
    try:
        evaluated = method if method.device.type == "cpu" else copy.deepcopy(method).to("cpu")
        return hook(evaluated, stage.name, ema.step)
    finally:
        stage.module.load_state_dict(raw)
        method.train()


def _save_state(out_dir: Path, method: Method, run: RunConfig, stage: int, step: int, loop: _StageLoop | None,
                rng: np.random.Generator, log: dict, accel: Any) -> None:
    """A complete training state; `loop` (mid-stage) adds the optimizer, LR schedule and EMA.

    Every rank contributes its RNG states (a collective); rank 0 writes, the others wait."""
    rng_states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and accel.device.type == "cuda":
        rng_states["cuda"] = torch.cuda.get_rng_state()
    if accel.num_processes > 1:
        gathered = {kind: accel.gather(state.to(accel.device)[None]).cpu() for kind, state in rng_states.items()}
        rng_states = {_rng_key(kind, r): rows[r] for kind, rows in gathered.items() for r in range(accel.num_processes)}
    if accel.is_main_process:
        files: dict[str, dict[str, torch.Tensor]] = {"model": method.state_dict(), "rng": rng_states}
        info: dict[str, Any] = {"numpy_rng": rng.bit_generator.state, "log": log, "run": run.to_json(),
                                "world_size": accel.num_processes}
        if loop is not None:
            files["optimizer"], info["optimizer"] = optimizer_to_tensors(loop.opt)
            info["lr_schedule"] = loop.sched.state_dict()
            files["ema"] = loop.ema.shadow
            info["ema_step"] = loop.ema.step
        write_train_state(out_dir, stage, step, files, info)
    accel.wait_for_everyone()


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
        if any("kl" in r for r in rows):  # a VAE's KL term: near 0 means the posterior collapsed
            kl_ax = ax.twinx()
            kl_ax.plot([r["step"] for r in rows if "kl" in r], [max(r["kl"], 1e-12) for r in rows if "kl" in r],
                       color="tab:orange", alpha=0.8)
            kl_ax.set_yscale("log")
            kl_ax.set_ylabel("KL (nats)", color="tab:orange")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
