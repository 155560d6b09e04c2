"""Named, parameterised perturbations, e.g. `--perturb action-noise:0.1`.

Each perturbation is a gymnasium wrapper whose randomness is seeded from the episode's reset
seed, so a perturbed evaluation is as reproducible as a clean one. Every results file records
the perturbation spec it ran with.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np


class _SeededWrapper(gym.Wrapper):
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        self._rng = np.random.default_rng(None if seed is None else [seed, 0x5EED])
        return self.env.reset(seed=seed, options=options)


class ActionNoise(_SeededWrapper):
    """Gaussian noise of std `scale` x (action range / 2) added to every action, then clipped."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = scale
        space = env.action_space
        self._half_range = (space.high - space.low) / 2.0
        self._rng = np.random.default_rng(0)

    def step(self, action: np.ndarray) -> Any:
        space = self.env.action_space
        noisy = action + self._rng.normal(0.0, self.scale, size=np.shape(action)) * self._half_range
        return self.env.step(np.clip(noisy, space.low, space.high).astype(np.float32))


class ObservationNoise(_SeededWrapper):
    """Gaussian noise of std `scale` (in observation units) added to every observation the policy sees."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = scale
        self._rng = np.random.default_rng(0)

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        return (obs + self._rng.normal(0.0, self.scale, size=obs.shape)).astype(obs.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return self._noisy(obs), info

    def step(self, action: np.ndarray) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info


PERTURBATIONS: dict[str, Callable[[gym.Env, float], gym.Env]] = {
    "action-noise": ActionNoise,
    "obs-noise": ObservationNoise,
}


def parse_perturbation(spec: str | None) -> tuple[str, float] | None:
    """'name:value' -> (name, value); None or 'none' -> None. Unknown names raise with the list."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    name, _, value = spec.partition(":")
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; known: {', '.join(sorted(PERTURBATIONS))} (use name:value)")
    try:
        magnitude = float(value)
    except ValueError as err:
        raise ValueError(f"perturbation {spec!r} needs a number after ':', e.g. {name}:0.1") from err
    if magnitude < 0:
        raise ValueError(f"perturbation magnitude must be >= 0, got {magnitude}")
    return name, magnitude


def apply_perturbation(env: gym.Env, spec: str | None) -> gym.Env:
    parsed = parse_perturbation(spec)
    if parsed is None:
        return env
    name, magnitude = parsed
    return PERTURBATIONS[name](env, magnitude)
