"""The observation history every runtime policy keeps, written once.

Training windows repeat an episode's first observation until To exist (`SegmentDataset` pads
at episode starts the same way), so a policy must do the same at run time, or its first steps
see inputs it never trained on.
"""

from __future__ import annotations

import numpy as np


class ObsHistory:
    """The last `length` observations of an episode, oldest first, padded with the first one.

    An observation is an array, or a dict of arrays (an image suite's {"obs": ..., <image key>: frame})."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"an observation history needs length >= 1, got {length}")
        self.length = length
        self.items: list[np.ndarray] = []

    def clear(self) -> None:
        self.items = []

    def push(self, obs: np.ndarray) -> None:
        """Append one observation (kept as given: the caller passes a copy it will not reuse)."""
        self.items = [*self.items[1:], obs] if self.items else [obs] * self.length

    def last(self, k: int) -> list[np.ndarray]:
        """The newest k observations, oldest first."""
        return self.items[-k:]

    def stacked(self) -> np.ndarray | dict[str, np.ndarray]:
        """(length, Do); for dict observations (image suites) one stack per key, e.g.
        {"obs": (length, Do), "image": (length, H, W, 3)}."""
        if isinstance(self.items[0], dict):
            return {key: np.stack([item[key] for item in self.items]) for key in self.items[0]}
        return np.stack(self.items)
