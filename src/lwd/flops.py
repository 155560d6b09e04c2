"""FLOPs counted by torch's own FlopCounterMode (matmul/conv = 2 x MACs; norms/activations not counted)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn` (run under no_grad, nothing printed)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
