"""Settings of plain behaviour cloning."""

from __future__ import annotations

from dataclasses import dataclass

from lwd.config import check_positive


@dataclass(frozen=True)
class BCConfig:
    """Plain behaviour cloning: one MLP obs (+ task one-hot) -> action. The sanity baseline."""

    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    steps: int = 20000
    obs_steps: int = 1
    """Observations the MLP sees, stacked (To). 1 = the current one; 2 also carries velocity,
    as Diffusion Policy's To=2 condition does."""

    def __post_init__(self) -> None:
        check_positive("BCConfig", steps=self.steps, obs_steps=self.obs_steps)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"BCConfig.hidden needs at least one positive width, got {self.hidden}")
