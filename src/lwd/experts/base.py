"""What a demonstrator is (the contract `lwd demos` and the expert benchmarks rely on)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Expert(Protocol):
    """A demonstrator. `info` is the env's latest info dict: experts may read privileged state
    from it (e.g. PushT's full simulator state), which learned policies never see."""

    def reset(self, seed: int) -> None: ...

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...
