"""What the trainer, the evaluator and the checkpoint code need from a method.

A method is an `nn.Module` (all learnable state, saved to model.safetensors) plus:
- `stages(...)`: the training stages in order (LWD: VAE then prior; BC: one), each naming the
  sub-module it optimises, how to draw a batch and the loss;
- `make_policy(...)`: a runtime policy with `reset(seed, task)` / `act(obs)` for one episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn


@dataclass
class Stage:
    name: str
    steps: int
    module: nn.Module
    """The parameters this stage optimises and averages (EMA); the rest stay frozen."""
    sample_batch: Callable[[np.random.Generator], dict[str, torch.Tensor]]
    loss: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
    lr: float
    prepare: Callable[[], None] = field(default=lambda: None)
    """Runs when the stage starts, also when a resumed run re-enters it (must be deterministic)."""


class Policy(Protocol):
    """Acts in one episode at a time. `reset` before each episode; `act` once per control step."""

    def reset(self, seed: int, task: int | None = None) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class Method(nn.Module):
    name: str = ""

    def method_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def stages(self, train_cfg: Any, episodes: Any) -> list[Stage]:
        raise NotImplementedError

    def make_policy(self, **runtime: Any) -> Policy:
        raise NotImplementedError

    def cost(self, **runtime: Any) -> dict[str, Any]:
        """Parameters and FLOPs per control step (measured with FlopCounterMode)."""
        raise NotImplementedError
