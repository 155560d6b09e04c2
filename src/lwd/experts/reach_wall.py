"""Two experts for reach-wall from the low start (`lwd.envs.reach_wall`): round the wall's left end
or its right end, then to the goal. Styles: `STYLES` = ("left", "right"); "left" is the default.

Each is a saturated P-controller on the fingertip position, as Metaworld's scripted policies are
(gain 10, each axis clipped to [-1, 1]), in three legs (each sticky): towards a waypoint beside one
end of the wall and just behind it, at the height the episode started at; once behind the wall,
across to above (or below) the goal at that height; once within GOAL_XY of it, to the goal.

Saturation makes the first leg a 45-degree diagonal: from the one start state the two styles move
apart sideways at ~0.9 cm per step each while both move forward at the same speed, and they reach
the wall's line 40 cm apart. Their mean action has no sideways part anywhere on the wall's centre
line, so it walks straight into the wall (the test shows it).

Why the goal's height last: a first version went to the goal in 3-D from behind the wall, so the
data showed the hand climbing just past the wall. BC on the mixed data copied that climb: with one
of two training seeds, rolled out with the finger readings the wall squeezes clipped to the data's
range, it went over the wall (only 3.5 cm above the start) in 44 of 50 episodes, a way no
demonstration took (benchmarks/results/averaging-task-direct-goal-leg.json).

The wall's geometry is mirrored here (experts never import envs; tests/test_reach_wall_detour.py
checks it against the simulator's box). Deterministic: the action is a function of the
observation and the leg, and the legs follow from the observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STYLES = ("left", "right")
"""The expert's styles, in a fixed order (a dataset's integer `style` ids index this)."""
WALL_LOW = np.array([-0.02, 0.74, 0.0])  # the wall's collision box, lower corner (m)
WALL_HIGH = np.array([0.22, 0.76, 0.12])  # and upper corner
END_CLEARANCE = 0.08  # m beyond the wall's end the fingertips pass (the fingers reach ~2 cm past them)
BEHIND = 0.04  # m behind the wall's back face: the waypoint's y
HANDOVER = 0.01  # m: the leg across starts once the fingertips are this close to the waypoint's y
GOAL_XY = 0.02  # m: the last leg (to the goal's height) starts this close to the goal horizontally
GAIN = 10.0


def waypoint_x(style: str) -> float:
    """Where a style passes the wall (x of its waypoint): beside the left or the right end."""
    return float(WALL_LOW[0] - END_CLEARANCE if style == "left" else WALL_HIGH[0] + END_CLEARANCE)


class DetourExpert:
    """Round the wall on the side `style` names, then to the goal (see the module docstring)."""

    def __init__(self, style: str = "left") -> None:
        if style not in STYLES:
            raise ValueError(f"unknown reach-wall expert style {style!r}; known: {', '.join(STYLES)}")
        self.style = style
        self.reset(0)

    def reset(self, seed: int) -> None:
        del seed  # nothing is drawn: the path depends on the start and the goal only
        self._height: float | None = None
        self._leg = "detour"

    @property
    def leg(self) -> str:
        """"detour" (to beside the wall's end), "across" (behind it, at the start height) or "goal"."""
        return self._leg

    def target(self, obs: np.ndarray) -> np.ndarray:
        """The point the fingertips head for now (moves on to the next leg when one is done)."""
        hand, goal = np.asarray(obs[:3], np.float64), np.asarray(obs[-3:], np.float64)
        if self._height is None:
            self._height = float(hand[2])  # cruise at the start height, below the wall's top
        if self._leg == "detour" and hand[1] >= WALL_HIGH[1] + BEHIND - HANDOVER:
            self._leg = "across"
        if self._leg == "across" and np.linalg.norm(goal[:2] - hand[:2]) < GOAL_XY:
            self._leg = "goal"
        if self._leg == "detour":
            return np.array([waypoint_x(self.style), WALL_HIGH[1] + BEHIND, self._height])
        return goal if self._leg == "goal" else np.array([goal[0], goal[1], self._height])

    def act(self, obs: np.ndarray, info: dict[str, Any] | None = None) -> np.ndarray:
        del info  # the observation holds the fingertips and the goal
        move = np.clip(GAIN * (self.target(obs) - np.asarray(obs[:3], np.float64)), -1.0, 1.0)
        return np.array([*move, 0.0], np.float32)  # gripper: open, as Metaworld's reach policies
