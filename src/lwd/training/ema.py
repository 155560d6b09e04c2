"""Exponential moving average of weights with Diffusion Policy's warm-up schedule.

decay(step) = min(max_decay, 1 - (1 + step) ** -power): early steps follow the raw weights
closely, later ones average over ever longer windows. Evaluation uses the averaged weights.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, power: float = 0.75, max_decay: float = 0.999) -> None:
        self.module = module
        self.power = power
        self.max_decay = max_decay
        self.step = 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def decay(self) -> float:
        if self.step <= 0:
            return 0.0
        return min(self.max_decay, 1.0 - (1.0 + self.step) ** -self.power)

    @torch.no_grad()
    def update(self) -> None:
        d = self.decay()
        for key, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                self.shadow[key].mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                self.shadow[key].copy_(value)
        self.step += 1

    @torch.no_grad()
    def copy_to_module(self) -> None:
        self.module.load_state_dict(self.shadow)
