"""Named, parameterised perturbations, e.g. `--perturb action-noise:0.1` or `--perturb object-push:3:0.05`.

Spec: `name:magnitude[:probability]`. The generic ones act on actions or observations; the
physical ones displace the task's object with the given probability per control step, through
the env's own `push_object(rng, magnitude)`. Each env names its push and unit (`PUSH_NAME`,
`PUSH_UNIT`): `block-push` moves PushT's T-block by pixels, `object-push` robomimic's cube, can
or nut by centimetres; the other name on an env is refused, so a magnitude is never read in the
wrong unit.

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
    """Gaussian noise of std `scale` (in observation units) added to every observation the policy sees.

    On an image suite (a dict observation) the noise goes to the low-dim part ("obs") only: a
    std in observation units says nothing about pixels, and the frames pass unchanged."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = scale
        self._rng = np.random.default_rng(0)

    def _noisy(self, obs: Any) -> Any:
        if isinstance(obs, dict):
            return {**obs, "obs": self._noisy(obs["obs"])}
        return (obs + self._rng.normal(0.0, self.scale, size=obs.shape)).astype(obs.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return self._noisy(obs), info

    def step(self, action: np.ndarray) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info


class ObjectPush(_SeededWrapper):
    """With probability `probability` per step, displace the task object by `magnitude` before acting.

    The env (unwrapped) must implement `push_object(rng, magnitude)`; the push happens after the
    policy has chosen its action from the pre-push observation, as a disturbance would.
    """

    DEFAULT_PROBABILITY = 0.05

    def __init__(self, env: gym.Env, magnitude: float, probability: float | None = None, name: str = "object-push") -> None:
        super().__init__(env)
        raw = env.unwrapped
        if not callable(getattr(raw, "push_object", None)):
            raise ValueError(f"{type(raw).__name__} does not support {name} (no push_object method)")
        own = getattr(raw, "PUSH_NAME", name)
        if own != name:
            raise ValueError(f"{name} does not apply to {type(raw).__name__}: its push is {own}:MAGNITUDE[:PROB] "
                             f"with MAGNITUDE in {getattr(raw, 'PUSH_UNIT', 'its own units')}")
        self.magnitude = magnitude
        self.probability = self.DEFAULT_PROBABILITY if probability is None else probability
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"object-push probability must be in [0, 1], got {self.probability}")
        self._rng = np.random.default_rng(0)
        self.pushes = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        self.pushes = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> Any:
        pushed = self._rng.random() < self.probability
        if pushed:
            self.env.unwrapped.push_object(self._rng, self.magnitude)
            self.pushes += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["pushed"] = bool(pushed)  # this transition was not the action's doing (demos record it)
        return obs, reward, terminated, truncated, info


PERTURBATIONS: dict[str, Callable[..., gym.Env]] = {
    "action-noise": ActionNoise,
    "obs-noise": ObservationNoise,
    "object-push": ObjectPush,
    "block-push": ObjectPush,
}
_TAKES_PROBABILITY = {"object-push", "block-push"}


def parse_perturbation(spec: str | None) -> tuple[str, tuple[float, ...]] | None:
    """'name:magnitude[:probability]' -> (name, numbers); None or 'none' -> None.

    Unknown names, missing or negative numbers, and a probability on a perturbation that takes
    none all raise with a message that says what to write instead.
    """
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    name, *values = spec.strip().split(":")
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; known: {', '.join(sorted(PERTURBATIONS))} (use name:value)")
    most = 2 if name in _TAKES_PROBABILITY else 1
    if not 1 <= len(values) <= most:
        form = f"{name}:magnitude:probability (probability optional)" if most == 2 else f"{name}:magnitude"
        raise ValueError(f"perturbation {spec!r} should read {form}, e.g. {name}:0.1")
    try:
        numbers = tuple(float(v) for v in values)
    except ValueError as err:
        raise ValueError(f"perturbation {spec!r} needs numbers after ':', e.g. {name}:0.1") from err
    if any(n < 0 or not np.isfinite(n) for n in numbers):
        raise ValueError(f"perturbation numbers must be finite and >= 0, got {spec!r}")
    return name, numbers


def apply_perturbation(env: gym.Env, spec: str | None) -> gym.Env:
    parsed = parse_perturbation(spec)
    if parsed is None:
        return env
    name, numbers = parsed
    if name in _TAKES_PROBABILITY:
        return PERTURBATIONS[name](env, *numbers, name=name)
    return PERTURBATIONS[name](env, *numbers)
