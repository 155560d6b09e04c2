"""A learned model of the dynamics on low-dimensional states: an ensemble of MLPs predicting the
change of (normalised) state from (normalised) state and action.

Why an ensemble: where the members disagree the model is guessing (off the demonstrations), and
WARPD can down-weight its imagined rollouts there. Members differ only by initialisation and see
the same transitions; their mean is the prediction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F


class DynamicsEnsemble(nn.Module):
    """M MLPs (s, a) -> delta s, all in the normaliser's [-1, 1] units."""

    def __init__(self, obs_dim: int, action_dim: int, members: int = 5, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        if members < 1 or not hidden or min(hidden) < 1:
            raise ValueError(f"a dynamics ensemble needs >= 1 member and positive widths, got {members}, {hidden}")
        self.obs_dim, self.action_dim = obs_dim, action_dim

        def member() -> nn.Sequential:
            layers: list[nn.Module] = []
            width = obs_dim + action_dim
            for h in hidden:
                layers += [nn.Linear(width, h), nn.SiLU()]
                width = h
            layers.append(nn.Linear(width, obs_dim))
            return nn.Sequential(*layers)

        self.members = nn.ModuleList(member() for _ in range(members))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """state (..., Do), action (..., Da) -> every member's delta (M, ..., Do)."""
        x = torch.cat([state, action], dim=-1)
        deltas = self._deltas(self.stacked(), x.reshape(-1, x.shape[-1]))
        return deltas.reshape(deltas.shape[0], *x.shape[:-1], self.obs_dim)

    def stacked(self, frozen: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The members' layers stacked, [(W (M, in, out), b (M, 1, out))], so that all M run in one
        batched product per layer (`step_stacked`). Build it once per imagined rollout, not per step.

        frozen: detached, so gradients flow through the inputs (to a policy) but never into the
        model's weights: a loss on imagined states cannot make the model bend its dynamics to please
        the policy."""
        linears = [[layer for layer in member if isinstance(layer, nn.Linear)] for member in self.members]
        layers = []
        for depth in range(len(linears[0])):
            w = torch.stack([member[depth].weight.transpose(0, 1) for member in linears])
            b = torch.stack([member[depth].bias for member in linears])[:, None]
            layers.append((w.detach(), b.detach()) if frozen else (w, b))
        return layers

    @staticmethod
    def _deltas(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """Every member on x (N, Do + Da) -> deltas (M, N, Do): one batched product per layer."""
        h = x.expand(layers[0][0].shape[0], -1, -1)
        for i, (w, b) in enumerate(layers):
            h = torch.baddbmm(b, h, w)
            if i < len(layers) - 1:
                h = F.silu(h)
        return h

    @classmethod
    def step_stacked(cls, layers: list[tuple[torch.Tensor, torch.Tensor]], state: torch.Tensor,
                     action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`step` on layers from `stacked`; state (B, Do), action (B, Da)."""
        deltas = cls._deltas(layers, torch.cat([state, action], dim=-1))  # (M, B, Do)
        disagreement = deltas.std(0, unbiased=False).mean(-1) if deltas.shape[0] > 1 else torch.zeros_like(deltas[0, :, 0])
        return state + deltas.mean(0), disagreement

    def frozen_stepper(self) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """`step(state, action)` with the weights detached and stacked once: what an imagined rollout
        calls at each of its K steps. (Anything with this method can serve as WARPD's world model,
        e.g. the true dynamics in a test.)"""
        layers = self.stacked(frozen=True)
        return lambda state, action: self.step_stacked(layers, state, action)

    def step(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next state (mean over members) and the members' disagreement (mean std over dims, (B,)).

        state (B, Do), action (B, Da). Imagined rollouts use `frozen_stepper` instead."""
        return self.step_stacked(self.stacked(), state, action)

    def transition_loss(self, states: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
                        unpushed: torch.Tensor | None = None) -> torch.Tensor:
        """One-step MSE of every member on the transitions inside segments.

        states (B, H, Do), actions (B, H, Da): the actions that drove each step (executed, not the
        labels, on noise-injected demos), mask (B, H): step j -> j+1 counts when both are real and,
        given `unpushed` (B, H), when no push moved the scene during it (no model of the robot's
        dynamics can predict a push)."""
        pred = self(states[:, :-1], actions[:, :-1])  # (M, B, H-1, Do)
        target = states[:, 1:] - states[:, :-1]  # (B, H-1, Do)
        valid = mask[:, :-1] * mask[:, 1:]  # (B, H-1)
        if unpushed is not None:
            valid = valid * unpushed[:, :-1]
        sq = ((pred - target) ** 2).mean(-1)  # (M, B, H-1)
        return (sq * valid).sum() / (valid.sum().clamp_min(1.0) * len(self.members))

    @torch.no_grad()
    def rollout_errors(self, states: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
                       lengths: tuple[int, ...], unpushed: torch.Tensor | None = None) -> dict[int, float]:
        """Open-loop error against demonstrations: from each segment's first state, replay its actions
        (those that drove the steps, as in `transition_loss`) through the model and compare the state
        L steps later (MSE in normalised units), for each L.

        Only segments whose first L+1 steps are all real, and (given `unpushed`) whose first L
        transitions no push interrupted, count for length L."""
        out: dict[int, float] = {}
        state = states[:, 0]
        horizon = states.shape[1]
        errors = []
        for j in range(horizon - 1):
            state, _ = self.step(state, actions[:, j])
            errors.append(((state - states[:, j + 1]) ** 2).mean(-1))  # (B,)
        for length in lengths:
            if 1 <= length < horizon:
                valid = mask[:, : length + 1].prod(1)  # (B,)
                if unpushed is not None:
                    valid = valid * unpushed[:, :length].prod(1)
                if valid.sum() > 0:
                    out[length] = float((errors[length - 1] * valid).sum() / valid.sum())
        return out
