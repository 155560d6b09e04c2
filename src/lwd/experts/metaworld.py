"""Metaworld's own scripted policies (metaworld.policies) as demonstrators."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class MetaworldExpert:
    """Wraps `metaworld.policies.ENV_POLICY_MAP[task]`; actions clipped to the env's [-1, 1] box."""

    def __init__(self, task_name: str) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        if task_name not in ENV_POLICY_MAP:
            raise ValueError(f"Metaworld ships no scripted policy for {task_name!r}")
        self._policy = ENV_POLICY_MAP[task_name]()

    def reset(self, seed: int) -> None:  # the scripted policies are stateless and deterministic
        del seed

    def act(self, obs: np.ndarray, info: dict[str, Any] | None = None) -> np.ndarray:
        del info  # Metaworld's scripted policies read only the observation
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": we clip below
            action = self._policy.get_action(obs.astype(np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)
