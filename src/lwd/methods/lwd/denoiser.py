"""Latent denoiser eps_phi(z_k, k, condition): an MLP with FiLM conditioning.

The condition is a task embedding, an encoding of the observation history, or both, plus for a
style-conditioned prior a style embedding (one of the styles, or a learned 'no style' token). Each
residual block modulates its hidden features with a per-feature scale and shift predicted from
[diffusion-step embedding, condition] (FiLM), as Diffusion Policy's U-Net does for its global
condition; latents are small vectors, so an MLP is enough.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        """k (B,) integer or float steps -> (B, dim)."""
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=k.device) / max(half - 1, 1))
        args = k.float().unsqueeze(-1) * freqs
        return torch.cat([args.sin(), args.cos()], dim=-1)


class FiLMResBlock(nn.Module):
    def __init__(self, width: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.film = nn.Linear(cond_dim, 2 * width)
        self.fc2 = nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).chunk(2, dim=-1)
        y = self.fc1(nn.functional.mish(self.norm(h)))
        y = y * (1.0 + scale) + shift
        return h + self.fc2(nn.functional.mish(y))


class LatentDenoiser(nn.Module):
    """Predicts the noise added to a latent. Conditioning inputs are optional but fixed at build time."""

    def __init__(
        self,
        latent_dim: int,
        num_tasks: int = 0,
        obs_cond_dim: int = 0,
        width: int = 512,
        n_blocks: int = 4,
        cond_dim: int = 256,
        num_styles: int = 0,
    ) -> None:
        """num_styles > 0: also a style embedding of num_styles + 1 entries, the last the 'no style' token
        (`no_style`); it is built after every other module, so a denoiser without it is initialised
        exactly as before styles existed."""
        super().__init__()
        if num_tasks <= 0 and obs_cond_dim <= 0:
            raise ValueError("the denoiser needs a condition: num_tasks > 0 (task-conditioned) and/or obs_cond_dim > 0 (state-conditioned)")
        self.latent_dim = latent_dim
        self.num_tasks = num_tasks
        self.obs_cond_dim = obs_cond_dim
        self.step_emb = nn.Sequential(SinusoidalEmbedding(128), nn.Linear(128, cond_dim), nn.Mish(), nn.Linear(cond_dim, cond_dim))
        self.task_emb = nn.Embedding(num_tasks, cond_dim) if num_tasks > 0 else None
        self.obs_enc = (
            nn.Sequential(nn.Linear(obs_cond_dim, cond_dim), nn.Mish(), nn.Linear(cond_dim, cond_dim)) if obs_cond_dim > 0 else None
        )
        self.inp = nn.Linear(latent_dim, width)
        self.blocks = nn.ModuleList([FiLMResBlock(width, cond_dim) for _ in range(n_blocks)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Mish(), nn.Linear(width, latent_dim))
        self.num_styles = num_styles
        self.style_emb = nn.Embedding(num_styles + 1, cond_dim) if num_styles > 0 else None

    @property
    def no_style(self) -> int:
        """The id of the 'no style' token (the unconditional prior of a style-conditioned denoiser)."""
        return self.num_styles

    def condition(self, task: torch.Tensor | None, obs_cond: torch.Tensor | None,
                  style: torch.Tensor | None = None) -> torch.Tensor:
        """task (B,) long and/or obs_cond (B, To*Do) [+ style (B,) long ids, `no_style` allowed; None: 'no
        style' for all] -> (B, cond_dim), computed once per sampling run."""
        parts = []
        if self.task_emb is not None:
            if task is None:
                raise ValueError("this denoiser is task-conditioned: pass task ids")
            parts.append(self.task_emb(task))
        if self.obs_enc is not None:
            if obs_cond is None:
                raise ValueError("this denoiser is state-conditioned: pass the observation history")
            if obs_cond.shape[-1] != self.obs_cond_dim:
                raise ValueError(f"observation history has {obs_cond.shape[-1]} values, expected {self.obs_cond_dim}")
            parts.append(self.obs_enc(obs_cond))
        if self.style_emb is not None:
            if style is None:
                style = torch.full((parts[0].shape[0],), self.no_style, dtype=torch.long, device=parts[0].device)
            parts.append(self.style_emb(style))
        elif style is not None:
            raise ValueError("this denoiser is not style-conditioned (trained without style_condition): it takes no style")
        return torch.stack(parts).sum(0)

    def forward(self, z: torch.Tensor, k: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """z (B, Dz), k (B,), cond (B, cond_dim) from `condition` -> predicted noise (B, Dz)."""
        c = nn.functional.mish(cond + self.step_emb(k))
        h = self.inp(z)
        for block in self.blocks:
            h = block(h, c)
        return self.out(h)
