"""The small policy whose weights a generating method (LWD, WARPD, lcmlp) emits: a plain MLP `pi_theta(s) -> a`.

Shared by every method that generates policy weights and by the tools that run or export such a
policy (`methods.base.WeightGenerator.target` is one of these specs).

The parameters live in one flat vector theta of length `num_params`, laid out layer by layer as
(weight (in, out), bias (out,)). Keeping theta flat is what lets a hypernetwork emit it and lets
a batch of B different policies run in one `torch.baddbmm` per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


ACTIVATIONS = {"relu": F.relu, "mish": F.mish, "tanh": torch.tanh}


@dataclass(frozen=True)
class TargetMLPSpec:
    """Shape of the generated policy: obs_dim -> hidden... -> action_dim."""

    obs_dim: int
    action_dim: int
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.obs_dim <= 0 or self.action_dim <= 0 or any(h <= 0 for h in self.hidden):
            raise ValueError(f"all layer sizes must be positive, got {self.layer_sizes}")

    @property
    def layer_sizes(self) -> list[int]:
        return [self.obs_dim, *self.hidden, self.action_dim]

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        sizes = self.layer_sizes
        return list(zip(sizes[:-1], sizes[1:]))

    @property
    def num_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)

    def init_std(self) -> torch.Tensor:
        """Per-parameter standard deviation of a sane fresh initialisation, shape (P,).

        Weights get He/LeCun-style 1/sqrt(fan_in) scaling; biases a small 0.1/sqrt(fan_in).
        The hypernetwork multiplies its raw output by this, so a fresh decoder already
        yields MLPs whose activations neither explode nor vanish.
        """
        parts = []
        for fan_in, fan_out in self.layer_shapes:
            parts.append(torch.full((fan_in * fan_out,), 1.0 / math.sqrt(fan_in)))
            parts.append(torch.full((fan_out,), 0.1 / math.sqrt(fan_in)))
        return torch.cat(parts)

    def unflatten(self, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Split theta (B, P) into per-layer (weight (B, in, out), bias (B, 1, out)).

        One `split`, not one slice per tensor: the backward of a slice writes its gradient into a
        zero-filled copy of all of theta (B x P), one per slice and per use, which made WARPD's
        imagined rollouts spend most of their time filling zeros; split's backward is one cat."""
        if theta.shape[-1] != self.num_params:
            raise ValueError(f"theta has {theta.shape[-1]} parameters but the policy needs {self.num_params}")
        sizes = [n for fan_in, fan_out in self.layer_shapes for n in (fan_in * fan_out, fan_out)]
        parts = theta.split(sizes, dim=-1)
        return [(parts[2 * i].reshape(-1, fan_in, fan_out), parts[2 * i + 1].reshape(-1, 1, fan_out))
                for i, (fan_in, fan_out) in enumerate(self.layer_shapes)]


def batched_mlp_forward(spec: TargetMLPSpec, theta: torch.Tensor | list[tuple[torch.Tensor, torch.Tensor]],
                        obs: torch.Tensor) -> torch.Tensor:
    """Run B policies, each on its own observations, in one bmm per layer.

    theta: (B, P), or its `spec.unflatten` when one theta runs several times (an imagined rollout);
    obs: (B, T, Do) -> actions (B, T, Da). Policy b only ever sees obs[b].
    """
    act = ACTIVATIONS[spec.activation]
    layers = spec.unflatten(theta) if isinstance(theta, torch.Tensor) else theta
    h = obs
    for i, (w, b) in enumerate(layers):
        h = torch.baddbmm(b, h, w)  # (B, T, out)
        if i < len(layers) - 1:
            h = act(h)
    return h


def numpy_mlp_forward(spec: TargetMLPSpec, layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray) -> np.ndarray:
    """One generated policy, one observation, in plain NumPy: the deployment path (no torch)."""
    h = obs
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < last:
            if spec.activation == "relu":
                np.maximum(h, 0.0, out=h)
            elif spec.activation == "tanh":
                h = np.tanh(h)
            else:  # mish
                h = h * np.tanh(np.log1p(np.exp(h)))
    return h


def fold_affine(
    layers: list[tuple[np.ndarray, np.ndarray]],
    in_scale: np.ndarray, in_shift: np.ndarray, out_scale: np.ndarray, out_shift: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Absorb an input map x -> x * in_scale + in_shift and an output map y -> y * out_scale + out_shift
    into the first and last layers, so the MLP runs on raw observations and returns raw actions.

    Why: at run time the per-step normalise / unnormalise calls cost about as much as the MLP itself;
    a generated policy is used for H steps, so folding once per generation saves them every step.
    Computed in float64 and returned as float32 (weight (in, out), bias (out,)) pairs, new arrays.
    """
    folded = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
    w, b = folded[0]
    folded[0] = (w * in_scale[:, None], b + in_shift @ w)
    w, b = folded[-1]
    folded[-1] = (w * out_scale[None, :], b * out_scale + out_shift)
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in folded]
