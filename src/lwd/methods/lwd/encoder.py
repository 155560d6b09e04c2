"""Trajectory encoder q(z | segment): a small transformer over (state, action) tokens.

Each of the H steps of a segment becomes one token [s_t, a_t]; a learned CLS token attends to
all real steps (padded steps past an episode's end are masked out) and is read out as the mean
and log-variance of a diagonal Gaussian over z.
"""

from __future__ import annotations

import torch
from torch import nn


class TrajectoryEncoder(nn.Module):
    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        horizon: int,
        latent_dim: int,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        num_tasks: int = 0,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.latent_dim = latent_dim
        self.token = nn.Linear(obs_dim + action_dim, d_model)
        self.pos = nn.Parameter(torch.randn(horizon + 1, d_model) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        # Task id as an extra input: the segment alone may not reveal the task (e.g. MT10's
        # observations do not name it), and telling the encoder lets z spend capacity elsewhere.
        self.task_emb = nn.Embedding(num_tasks, d_model) if num_tasks > 0 else None
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, 2 * latent_dim)

    def forward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        mask: torch.Tensor | None = None,
        task: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """states (B, H, Do), actions (B, H, Da), mask (B, H) 1=real -> mu, logvar (B, Dz)."""
        batch, horizon = states.shape[:2]
        if horizon > self.horizon:
            raise ValueError(f"segment has {horizon} steps but the encoder was built for at most {self.horizon}")
        tokens = self.token(torch.cat([states, actions], dim=-1)) + self.pos[1 : horizon + 1]  # (B, H, d)
        cls = self.cls.expand(batch, -1, -1) + self.pos[:1]
        if self.task_emb is not None and task is not None:
            cls = cls + self.task_emb(task).unsqueeze(1)
        x = torch.cat([cls, tokens], dim=1)  # (B, 1+H, d)
        pad = None
        if mask is not None:
            pad = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=mask.device), mask < 0.5], dim=1)  # True = ignore
        h = self.norm(self.blocks(x, src_key_padding_mask=pad)[:, 0])
        mu, logvar = self.out(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)
