"""Learning methods. Each module holds one method's config, model, training stages and runtime policy.

`METHODS` is the one place that maps a method name (as in `lwd train NAME` and config.json) to its
config class and model class; modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> (module, config class, method class)
METHODS: dict[str, tuple[str, str, str]] = {
    "lwd": ("lwd.config", "LWDConfig", "lwd.methods.lwd:LWD"),
    "bc": ("lwd.config", "BCConfig", "lwd.methods.bc:BC"),
    "dp": ("lwd.methods.diffusion_policy", "DPConfig", "lwd.methods.diffusion_policy:DiffusionPolicy"),
}


def _check(name: str) -> tuple[str, str, str]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def config_class(name: str) -> type:
    module, cls, _ = _check(name)
    return getattr(importlib.import_module(module), cls)


def build(name: str, cfg: Any, info: Any, normalizer: Any, seed: int | None = None) -> Any:
    """A fresh method; with `seed`, its initial weights depend on nothing else (exact reproducibility)."""
    _, _, target = _check(name)
    module, cls = target.split(":")
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    return getattr(importlib.import_module(module), cls)(cfg, info, normalizer)
