"""Where training runs: device, precision, CPU threads, gradient accumulation, and the process group.

Distribution is PyTorch's DDP through Hugging Face accelerate: the same `lwd train` runs as one
process, or under `accelerate launch` / `torchrun` as several (GPUs, CPU processes with gloo, or
nodes); accelerate reads the launcher's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

None of these settings is part of a run's configuration: they change how fast a run trains, not
what it learns (up to float rounding, and the per-rank noise streams described in `lwd.training.train`),
so they are not in `config.json` and do not change a study cell's key.

Threads: torch's default (one per core) collapses when other processes share the cores: on the
2-core development machine one busy neighbour made training 2.7x slower, several about 20x.
One thread per process does not collapse, so it is the default on CPU (see BENCHMARKS.md,
"Training throughput"); `--threads 0` restores torch's default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class Hardware:
    """How (not what) to train. Defaults: the best device present, full precision, one CPU thread."""

    device: str = "auto"
    """auto (a GPU when present, else the CPU), cpu, cuda or mps."""
    precision: str = "no"
    """Mixed precision: no, bf16 (CPU, recent GPUs) or fp16 (GPUs, with loss scaling)."""
    threads: int = 1
    """torch intra-op threads per process on the CPU; 0 keeps torch's default (one per core)."""
    grad_accum: int = 1
    """Micro-batches per optimiser step. The global batch (TrainConfig.batch_size) is split over
    processes and then into this many micro-batches, so a step sees the same samples whatever the
    world size or accumulation: they trade memory for time, not results."""

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: torch's default), got {self.threads}")
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")


def resolve_device(name: str) -> str:
    """The device `name` means here; asking for one this machine lacks is an error, not a fallback."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda" and not cuda:
        raise ValueError("--device cuda: this machine has no CUDA GPU visible to torch (torch.cuda.is_available() is False)")
    if name == "mps" and not mps:
        raise ValueError("--device mps: Apple's MPS backend is not available here")
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    return name


def make_accelerator(hardware: Hardware) -> Any:
    """An accelerate `Accelerator` for these settings (it joins the launcher's process group, if any)."""
    from accelerate import Accelerator

    device = resolve_device(hardware.device)
    if hardware.precision == "fp16" and device == "cpu":
        raise ValueError("--precision fp16 needs a GPU; on the CPU use bf16 or no")
    if launched_world()[1] == 1:
        # accelerate keeps one process-wide state (device, precision); a single process that trains
        # several runs (a notebook, a study, the tests) may change them between runs.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=device == "cpu", mixed_precision=hardware.precision)
    if accelerator.device.type == "cpu" and hardware.threads > 0:
        torch.set_num_threads(hardware.threads)  # after accelerate, which sets its own when OMP_NUM_THREADS is unset
    return accelerator


def launched_world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun, accelerate launch); (0, 1) alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def join_launch() -> tuple[int, int]:
    """Under torchrun / accelerate launch, join the process group (once) and return (rank, world size).

    The backend follows the device training would pick (nccl with GPUs, gloo on CPUs), so training
    and evaluation later in the same process share the group."""
    rank, world = launched_world()
    if world > 1:
        from accelerate import PartialState

        state = PartialState(cpu=resolve_device("auto") == "cpu")
        rank, world = state.process_index, state.num_processes
    return rank, world


def barrier() -> None:
    """Wait for every process of the launch (nothing to wait for in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_json(obj: Any) -> list[Any]:
    """Every rank's JSON-serialisable `obj`, in rank order, on every rank.

    Sent as UTF-8 bytes in a tensor rather than with torch's pickling `all_gather_object`, so no
    process ever unpickles what another sent."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    payload = torch.frombuffer(bytearray(json.dumps(obj).encode()), dtype=torch.uint8)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    size = torch.tensor([payload.numel()], device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: payload.numel()] = payload.to(device)
    chunks = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(chunks, padded)
    return [json.loads(bytes(c[: int(s.item())].cpu().tolist()).decode()) for c, s in zip(chunks, sizes)]
