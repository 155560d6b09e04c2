"""What every suite's env shares: a required reset seed, the step counter and time limit, success
termination, action clipping, and rendering and closing through the wrapped simulator.

A suite's env subclasses `SeededTaskEnv`, builds its simulator as `self._env`, and implements
`_reset(seed, options) -> (obs, info)` and `_advance(action) -> (obs, reward, info)` with
info["success"] set; the time limit, termination and the gymnasium return values are this class's.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class SeededTaskEnv(gym.Env):
    """A task env whose episodes are identified by their seed (`reset` refuses to run without one)."""

    _env: Any
    """The wrapped simulator; `render` and `close` go to it."""

    def __init__(self, obs_dim: int, action_low: float, action_high: float, action_dim: int,
                 terminate_on_success: bool = True, max_episode_steps: int = 0, render_mode: str | None = None) -> None:
        self.terminate_on_success = terminate_on_success
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(action_low, action_high, (action_dim,), np.float32)
        self._action_bounds = (float(action_low), float(action_high))
        self._t = 0

    def _reset(self, seed: int, options: dict | None) -> tuple[np.ndarray, dict]:
        raise NotImplementedError

    def _advance(self, action: np.ndarray) -> tuple[np.ndarray, float, dict]:
        """One simulator step with an already clipped float64 action -> (obs, reward, info with "success")."""
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is None:
            raise ValueError(f"{type(self).__name__} needs an explicit seed: results must be reproducible")
        super().reset(seed=seed)
        self._t = 0
        return self._reset(seed, options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_space.shape), *self._action_bounds)
        obs, reward, info = self._advance(action)
        self._t += 1
        terminated = bool(info["success"]) and self.terminate_on_success
        truncated = self._t >= self.max_episode_steps and not terminated
        return obs, reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        return self._env.render()

    def close(self) -> None:
        self._env.close()
