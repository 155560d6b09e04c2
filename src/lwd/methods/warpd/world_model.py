"""A learned model of the dynamics on low-dimensional states: an ensemble of MLPs predicting the
change of (normalised) state from (normalised) state and action.

Why an ensemble: where the members disagree the model is guessing (off the demonstrations), and
WARPD can down-weight its imagined rollouts there. Members differ only by initialisation and see
the same transitions; their mean is the prediction.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


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
        return torch.stack([m(x) for m in self.members])

    def step(self, state: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Next state (mean over members) and the members' disagreement (mean std over dims, (...,)).

        frozen: gradients flow through the inputs (to a policy) but never into the model's weights,
        so a loss on imagined states cannot make the model bend its dynamics to please the policy."""
        if frozen:
            params = {k: v.detach() for k, v in self.named_parameters()}
            deltas = functional_call(self, params, (state, action))
        else:
            deltas = self(state, action)
        disagreement = deltas.std(0, unbiased=False).mean(-1) if deltas.shape[0] > 1 else torch.zeros_like(deltas[0, ..., 0])
        return state + deltas.mean(0), disagreement

    def transition_loss(self, states: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One-step MSE of every member on the transitions inside segments.

        states (B, H, Do), actions (B, H, Da), mask (B, H): step j -> j+1 counts when both are real."""
        pred = self(states[:, :-1], actions[:, :-1])  # (M, B, H-1, Do)
        target = states[:, 1:] - states[:, :-1]  # (B, H-1, Do)
        valid = mask[:, :-1] * mask[:, 1:]  # (B, H-1)
        sq = ((pred - target) ** 2).mean(-1)  # (M, B, H-1)
        return (sq * valid).sum() / (valid.sum().clamp_min(1.0) * len(self.members))

    @torch.no_grad()
    def rollout_errors(self, states: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
                       lengths: tuple[int, ...]) -> dict[int, float]:
        """Open-loop error against demonstrations: from each segment's first state, replay its actions
        through the model and compare the state L steps later (MSE in normalised units), for each L.

        Only segments whose first L+1 steps are all real count for length L."""
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
                if valid.sum() > 0:
                    out[length] = float((errors[length - 1] * valid).sum() / valid.sum())
        return out
