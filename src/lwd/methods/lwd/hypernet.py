"""Chunked hypernetwork decoder: latent z -> parameters theta of a small MLP policy.

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


class ChunkedHypernetwork(nn.Module):
    def __init__(
        self,
        target: TargetMLPSpec,
        latent_dim: int,
        chunk_size: int = 2048,
        chunk_emb_dim: int = 64,
        hidden: tuple[int, ...] = (256, 256),
    ) -> None:
        super().__init__()
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.target = target
        self.latent_dim = latent_dim
        self.chunk_size = chunk_size
        self.num_chunks = math.ceil(target.num_params / chunk_size)
        self.chunk_emb = nn.Parameter(torch.randn(self.num_chunks, chunk_emb_dim))
        layers: list[nn.Module] = []
        width = latent_dim + chunk_emb_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Mish()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, chunk_size)
        # Small head so theta starts close to `base` (a standard fresh MLP) plus mild z-dependence.
        nn.init.normal_(self.head.weight, std=0.3 / math.sqrt(width))
        nn.init.zeros_(self.head.bias)
        init_std = target.init_std()
        self.register_buffer("init_std", init_std, persistent=False)
        self.base = nn.Parameter(torch.randn(target.num_params) * init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Dz) -> theta (B, P)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        batch = z.shape[0]
        emb = self.chunk_emb.unsqueeze(0).expand(batch, -1, -1)  # (B, C, E)
        zz = z.unsqueeze(1).expand(-1, self.num_chunks, -1)  # (B, C, Dz)
        chunks = self.head(self.body(torch.cat([zz, emb], dim=-1)))  # (B, C, chunk)
        raw = chunks.reshape(batch, -1)[:, : self.target.num_params]  # (B, P)
        return self.base + self.init_std * raw

    def policy_actions(self, z: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Decode B policies and apply each to its own states: z (B, Dz), obs (B, T, Do) -> (B, T, Da)."""
        return batched_mlp_forward(self.target, self(z), obs)


class BasisHypernetwork(nn.Module):
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
        super().__init__()
        if basis_size <= 0:
            raise ValueError(f"basis_size must be positive, got {basis_size}")
        self.target = target
        self.latent_dim = latent_dim
        self.basis_size = basis_size
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Mish()]
            width = h
        self.body = nn.Sequential(*layers)
        self.coefficients = nn.Linear(width, basis_size)
        # Scaled like the chunked head, so theta starts near `base` (a standard fresh MLP) with mild z-dependence.
        self.basis = nn.Parameter(torch.randn(basis_size, target.num_params) * (0.3 / math.sqrt(basis_size)))
        init_std = target.init_std()
        self.register_buffer("init_std", init_std, persistent=False)
        self.base = nn.Parameter(torch.randn(target.num_params) * init_std)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Dz) -> theta (B, P)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {tuple(z.shape)}")
        coefficients = self.coefficients(self.body(z))  # (B, k)
        return self.base + self.init_std * (coefficients @ self.basis)

    def policy_actions(self, z: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Decode B policies and apply each to its own states: z (B, Dz), obs (B, T, Do) -> (B, T, Da)."""
        return batched_mlp_forward(self.target, self(z), obs)
