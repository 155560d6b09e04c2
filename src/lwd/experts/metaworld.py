"""Metaworld's own scripted policies (metaworld.policies) as demonstrators, in three styles.

Styles (`STYLES`, chosen per episode by `lwd demos --styles`; every style solves every MT10 task):
- "scripted" (the default): Metaworld's policy exactly, stateless and deterministic. Its approach
  is diagonal: the policies command a saturated P-controller towards a point above the object
  (per axis, so the hand rises or sinks and travels across at the same time);
- "lift-first": an approach from above along a rectilinear path: the hand first rises straight
  up to a cruise height CRUISE_CLEARANCE (6-10 cm, drawn per episode) above the higher of its
  start and the scripted policy's first waypoint (`APPROACH`, e.g. 20 cm above the puck for push),
  then travels across at that height to above that waypoint, and there hands over to the
  scripted policy (for good) for the descent and the task itself;
- "slow": a careful operator: the scripted policy's diagonal approach to the same first waypoint at
  SLOW_SCALE (0.3-0.45, drawn per episode) of its saturated speed, then the scripted policy at full
  speed from there. Slowing the whole episode was tried and is not competent (10 seeds: push 3/10,
  the fingers close on top of the puck before the hand is down; peg-insert-side 6/10, and 0/10
  with a speed cap instead of a scale).
Why hand over at the first waypoint: the task phases (grasp, push, pull) stay the scripted
policy's, so each style is as competent as it; the approach is where operators' habits differ,
and the styles act differently from the same start state (every MT10 task starts the hand at one
fixed pose): straight up, diagonally, or diagonally and slowly.
Where the styles coincide (measured by benchmarks/mt10_styles.py): on drawer-close the scripted
policy itself climbs straight up first (its hand starts in front of the handle), so there
"lift-first" differs by cruising 6-10 cm higher, not by the order of its moves; on
button-press-topdown the cruise height is capped by CRUISE_CEILING, so its draw changes nothing.

Per-episode draws come from an RNG seeded by [seed, salt], so a style is deterministic per seed.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

STYLES = ("scripted", "lift-first", "slow")
"""The expert's styles, in a fixed order (a dataset's integer `style` ids index this)."""
CRUISE_CLEARANCE = (0.06, 0.10)  # m above max(start height, hover height): "lift-first"'s cruise height
CRUISE_CEILING = 0.47  # m: the Sawyer's mocap stops at z = 0.5
SLOW_SCALE = (0.30, 0.45)  # "slow": factor on the scripted position command
HANDOVER_XY = 0.01  # m: the styles hand over once this close (horizontally) to the first waypoint
HANDOVER_Z = 0.01  # m: and "slow" once this close in height ("lift-first": the rise ends this close to cruise)
_P_GAIN = 10.0  # P gain of the styles' own legs (saturates beyond 10 cm, as the scripted policies do)


def _hand(obs: np.ndarray) -> np.ndarray:
    return obs[:3]


def _obj(obs: np.ndarray) -> np.ndarray:
    return obs[4:7]


def _goal(obs: np.ndarray) -> np.ndarray:
    return obs[-3:]


def _above(dx: float, dy: float, dz: float, hover: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda o: _obj(o) + np.array([dx, dy, dz + hover])


# task -> obs -> the first waypoint of Metaworld's scripted policy: each mirrors the first branch
# of the task's policy in metaworld.policies (e.g. push: 20 cm above the puck, 5 mm towards -x;
# reach has no branches: the goal). Handed over there, the scripted policy goes on with its
# descent (the hand is within every policy's "above the object" tolerance, 2-12 cm).
APPROACH: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "reach-v3": _goal,
    "push-v3": _above(-0.005, 0.0, 0.0, 0.2),
    "pick-place-v3": _above(-0.005, 0.0, 0.0, 0.1),
    "door-open-v3": _above(-0.05 + 0.06, 0.02, 0.0, 0.2),
    "drawer-open-v3": _above(0.0, 0.0, -0.02, 0.3),
    "drawer-close-v3": _above(0.0, -0.075, -0.02, 0.23),
    "button-press-topdown-v3": _above(0.0, 0.0, 0.0, 0.1),
    "peg-insert-side-v3": _above(0.0, 0.0, 0.0, 0.3),
    "window-open-v3": _above(-0.03, -0.03, -0.08, 0.3),
    "window-close-v3": _above(0.03, -0.03, -0.08, 0.25),
}


def styles_for(task_name: str) -> tuple[str, ...]:
    """The styles the expert of `task_name` offers: all of `STYLES` for the MT10 tasks, else the default only."""
    return STYLES if task_name in APPROACH else STYLES[:1]


class MetaworldExpert:
    """Wraps `metaworld.policies.ENV_POLICY_MAP[task]`; actions clipped to the env's [-1, 1] box.

    `style`: one of `STYLES` (see the module docstring); "scripted", the default, is Metaworld's
    policy exactly as it was before styles existed. `salt` separates experts that share a seed.
    """

    def __init__(self, task_name: str, style: str = "scripted", salt: int = 0) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        if task_name not in ENV_POLICY_MAP:
            raise ValueError(f"Metaworld ships no scripted policy for {task_name!r}")
        if style not in styles_for(task_name):
            known = ", ".join(styles_for(task_name))
            raise ValueError(f"unknown Metaworld expert style {style!r} for {task_name}; known: {known}")
        self._policy = ENV_POLICY_MAP[task_name]()
        self.task_name = task_name
        self.style = style
        self.salt = int(salt)
        self.reset(0)

    def reset(self, seed: int) -> None:
        rng = np.random.default_rng([int(seed), self.salt])
        self._clearance = float(rng.uniform(*CRUISE_CLEARANCE))
        self._slow = float(rng.uniform(*SLOW_SCALE))
        self._phase = {"lift-first": "rise", "slow": "slow"}.get(self.style, "scripted")
        self._plan: dict[str, Any] = {}

    @property
    def phase(self) -> str:
        """"rise", "across" (lift-first's own legs), "slow" (slow's approach) or "scripted" (for tests)."""
        return self._phase

    def _scripted(self, obs: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": we clip below
            return np.asarray(self._policy.get_action(obs.astype(np.float64)), np.float64)

    def act(self, obs: np.ndarray, info: dict[str, Any] | None = None) -> np.ndarray:
        del info  # Metaworld's scripted policies read only the observation
        obs = np.asarray(obs, np.float64)
        action = self._scripted(obs)
        if self._phase != "scripted":
            own = self._approach(obs)
            if own is not None:
                action[:3] = own
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _approach(self, obs: np.ndarray) -> np.ndarray | None:
        """The style's own position command on its way to the scripted policy's first waypoint,
        or None once it hands over there (for good)."""
        hand, waypoint = _hand(obs), APPROACH[self.task_name](obs)  # the waypoint follows the object
        if not self._plan:  # fixed at the first step: lift-first's legs are straight lines
            cruise = min(max(hand[2], waypoint[2]) + self._clearance, CRUISE_CEILING)
            self._plan = {"start_xy": hand[:2].copy(), "cruise": cruise}
        if self._phase == "slow":  # the scripted policy's diagonal path, at a fraction of its speed
            error = waypoint - hand
            if np.linalg.norm(error[:2]) < HANDOVER_XY and abs(error[2]) < HANDOVER_Z:
                self._phase = "scripted"
                return None
            return np.clip(_P_GAIN * error, -1.0, 1.0) * self._slow
        cruise = self._plan["cruise"]
        if self._phase == "rise":
            if abs(cruise - hand[2]) >= HANDOVER_Z:
                return _P_GAIN * (np.array([*self._plan["start_xy"], cruise]) - hand)
            self._phase = "across"
        if np.linalg.norm(waypoint[:2] - hand[:2]) < HANDOVER_XY:
            self._phase = "scripted"
            return None
        return _P_GAIN * (np.array([*waypoint[:2], cruise]) - hand)
