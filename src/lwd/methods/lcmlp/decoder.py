"""The decoder of the latent-conditioned MLP: pi(s, z) with z as an input, written as weights.

An MLP that takes [s, z] as input computes W_s s + W_z z + b in its first layer and is the same
function of s for every z after that. So it is exactly a generated MLP whose weights are all
shared constants except the first layer's bias, b + W_z z, a linear function of z. Writing it
this way keeps everything downstream of the decoder (the runtime, export, FLOP counting) the
same as LWD's, and states the ablation precisely: the hypernetwork against a decoder that may only
shift the first layer's bias.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lwd.methods.target_mlp import TargetMLPSpec, batched_mlp_forward


class LatentConditionedDecoder(nn.Module):
    def __init__(self, target: TargetMLPSpec, latent_dim: int) -> None:
        super().__init__()
        self.target = target
        self.latent_dim = latent_dim
        fan_in, first_width = target.layer_shapes[0]
        self.bias_offset = fan_in * first_width  # theta: first weight (in, out), then its bias (out,)
        self.first_width = first_width
        # Shared weights initialised like a fresh MLP; z enters like extra inputs of a Linear layer.
        self.base = nn.Parameter(torch.randn(target.num_params) * target.init_std())
        self.latent_to_bias = nn.Linear(latent_dim, first_width, bias=False)
        nn.init.normal_(self.latent_to_bias.weight, std=1.0 / math.sqrt(fan_in + latent_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Dz) -> theta (B, P): the shared weights with the first bias shifted by W_z z."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        shift = self.latent_to_bias(z)  # (B, h1)
        before = self.base[: self.bias_offset].expand(z.shape[0], -1)
        bias = self.base[self.bias_offset : self.bias_offset + self.first_width] + shift
        after = self.base[self.bias_offset + self.first_width :].expand(z.shape[0], -1)
        return torch.cat([before, bias, after], dim=1)

    def policy_actions(self, z: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """z (B, Dz), obs (B, T, Do) -> (B, T, Da)."""
        return batched_mlp_forward(self.target, self(z), obs)
