"""Settings of WARPD: LWD's settings plus the world model and the assisted loss."""

from __future__ import annotations

from dataclasses import dataclass, field

from lwd.config import ADDED_LATER
from lwd.methods.lwd.config import LWDConfig

WM_MODES = ("pretrain", "joint")
ASSIST_TARGETS = ("state", "action", "both")


@dataclass(frozen=True)
class WARPDConfig(LWDConfig):
    """LWD whose decoder is also trained on rollouts of its policies through a learned world model.

    See `lwd.methods.warpd.model` for the objective these settings weigh."""

    wm_mode: str = "pretrain"
    """'pretrain': a world-model stage first, then the VAE against the frozen model; 'joint': the
    world model learns alongside the VAE (one-step loss on the same batches)."""
    wm_members: int = 5
    wm_hidden: tuple[int, ...] = (256, 256)
    wm_steps: int = 5000
    """Steps of the world-model stage ('pretrain' only)."""
    wm_lr: float = 1e-3
    wm_val_fraction: float = 0.1
    """Episodes held out to measure the world model's rollout error (not held out from the VAE)."""
    assist_weight: float = 1.0
    """lambda: weight of the imagined-rollout term (0 turns WARPD into LWD plus an unused model)."""
    assist_steps: int = 8
    """K: imagined steps per segment (<= horizon - 1)."""
    assist_target: str = "both"
    """'state': imagined states near the demonstrated ones; 'action': the policy's actions on imagined
    states near the demonstrated actions; 'both'."""
    assist_warmup: int = 1000
    """VAE loss evaluations over which lambda ramps linearly from 0 (the decoder first learns BC)."""
    assist_gate: float = 0.0
    """> 0: weigh each imagined step by exp(-disagreement / gate), the members' spread at that step."""
    assist_start_noise: float = field(default=0.0, metadata=ADDED_LATER)
    """> 0: imagined recovery. Displace each imagined rollout's start state by Gaussian noise of
    this std (normalised units, every dimension), as a push would, so the assisted loss asks the
    decoded policy to steer back to the demonstrated path from states no demonstration visits.
    Use with assist_target='state' (the demonstrated actions are not recovery actions)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.wm_mode not in WM_MODES:
            raise ValueError(f"WARPDConfig.wm_mode must be one of {WM_MODES}, got {self.wm_mode!r}")
        if self.assist_target not in ASSIST_TARGETS:
            raise ValueError(f"WARPDConfig.assist_target must be one of {ASSIST_TARGETS}, got {self.assist_target!r}")
        if not 1 <= self.assist_steps <= self.horizon - 1:
            raise ValueError(f"WARPDConfig.assist_steps must be in [1, horizon-1={self.horizon - 1}], got {self.assist_steps}")
        if self.wm_members < 1 or not self.wm_hidden or min(self.wm_hidden) < 1 or self.wm_steps < 1 or self.wm_lr <= 0:
            raise ValueError("WARPDConfig: wm_members, wm_hidden, wm_steps and wm_lr must be positive")
        if self.assist_weight < 0 or self.assist_warmup < 0 or self.assist_gate < 0 or self.assist_start_noise < 0:
            raise ValueError("WARPDConfig: assist_weight, assist_warmup, assist_gate and assist_start_noise must be >= 0")
        if not 0.0 <= self.wm_val_fraction < 1.0:
            raise ValueError(f"WARPDConfig.wm_val_fraction must be in [0, 1), got {self.wm_val_fraction}")
