"""Hypernetwork decoders, latent z -> parameters theta of a small MLP policy: chunked (below) and shared-basis.

In the style of von Oswald et al. (2020): theta (P values) is cut into C chunks of equal size.
Each chunk c has a learned embedding e_c, and one shared MLP maps [z, e_c] to that chunk. The
hypernetwork therefore has ~hidden x chunk_size output weights instead of hidden x P, and one
pass over a (B*C) batch produces the weights of B policies at once.

theta = base + init_std * g([z, e_c])
`base` is a learned per-parameter offset initialised like a fresh MLP, and `init_std` a fixed
per-parameter scale (1/sqrt(fan_in)), so a freshly built decoder already produces sanely
initialised policies, and gradient steps on g move all layers at comparable relative rates.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lwd.methods.target_mlp import TargetMLPSpec, batched_mlp_forward


class WeightDecoder(nn.Module):
    """What every z -> theta decoder shares: theta = base + init_std * raw(z), and running the policies.

    `base` is a learned per-parameter offset initialised like a fresh MLP, `init_std` the fixed
    per-parameter scale (1/sqrt(fan_in)); subclasses produce `raw` (B, P) from z (B, Dz) and call
    `add_base()` last in their __init__, so the random draws keep the order saved runs were built in."""

    def __init__(self, target: TargetMLPSpec, latent_dim: int) -> None:
        super().__init__()
        self.target = target
        self.latent_dim = latent_dim
        self.register_buffer("init_std", target.init_std(), persistent=False)

    def add_base(self) -> None:
        self.base = nn.Parameter(torch.randn(self.target.num_params) * self.init_std)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Dz) -> theta (B, P)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.base + self.init_std * self.raw(z)

    def policy_actions(self, z: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Decode B policies and apply each to its own states: z (B, Dz), obs (B, T, Do) -> (B, T, Da)."""
        return batched_mlp_forward(self.target, self(z), obs)


def mish_mlp(width: int, hidden: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """Linear + Mish layers of the given widths from `width` inputs: (the layers, their output width)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Mish()]
        width = h
    return nn.Sequential(*layers), width


class ChunkedHypernetwork(WeightDecoder):
    def __init__(
        self,
        target: TargetMLPSpec,
        latent_dim: int,
        chunk_size: int = 2048,
        chunk_emb_dim: int = 64,
        hidden: tuple[int, ...] = (256, 256),
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        super().__init__(target, latent_dim)
        self.chunk_size = chunk_size
        self.num_chunks = math.ceil(target.num_params / chunk_size)
        self.chunk_emb = nn.Parameter(torch.randn(self.num_chunks, chunk_emb_dim))
        self.body, width = mish_mlp(latent_dim + chunk_emb_dim, hidden)
        self.head = nn.Linear(width, chunk_size)
        # Small head so theta starts close to `base` (a standard fresh MLP) plus mild z-dependence.
        nn.init.normal_(self.head.weight, std=0.3 / math.sqrt(width))
        nn.init.zeros_(self.head.bias)
        self.add_base()

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        emb = self.chunk_emb.unsqueeze(0).expand(batch, -1, -1)  # (B, C, E)
        zz = z.unsqueeze(1).expand(-1, self.num_chunks, -1)  # (B, C, Dz)
        chunks = self.head(self.body(torch.cat([zz, emb], dim=-1)))  # (B, C, chunk)
        return chunks.reshape(batch, -1)[:, : self.target.num_params]  # (B, P)


class BasisHypernetwork(WeightDecoder):
    """Shared-basis decoder: theta = base + init_std * (c(z) @ B), with k = basis_size learned directions B.

    The chunked decoder's cost is its head, about 2 x hidden x P FLOPs per generated policy (12 M of
    a 36 M MT10 generation at hidden 256). Here an MLP maps z to k coefficients and one (k, P) basis
    turns them into theta: 2 x k x P FLOPs, so k = 32 costs an eighth of a 256-wide head. Every
    generated policy lies in a k-dimensional affine subspace of weight space around `base`. That is
    still more than a multitask MLP needs: a task one-hot at the input of a shared MLP shifts only
    the first layer's bias, one direction per task, so k >= the number of tasks can express it
    exactly, and the rest of the basis is left for behaviour within a task.
    """

    def __init__(self, target: TargetMLPSpec, latent_dim: int, basis_size: int = 32,
                 hidden: tuple[int, ...] = (256,)) -> None:
        if basis_size <= 0:
            raise ValueError(f"basis_size must be positive, got {basis_size}")
        super().__init__(target, latent_dim)
        self.basis_size = basis_size
        self.body, width = mish_mlp(latent_dim, hidden)
        self.coefficients = nn.Linear(width, basis_size)
        # Scaled like the chunked head, so theta starts near `base` (a standard fresh MLP) with mild z-dependence.
        self.basis = nn.Parameter(torch.randn(basis_size, target.num_params) * (0.3 / math.sqrt(basis_size)))
        self.add_base()

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.coefficients(self.body(z)) @ self.basis  # (B, k) @ (k, P)
