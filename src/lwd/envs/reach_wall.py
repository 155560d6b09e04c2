"""Metaworld's reach-wall with the hand starting low and centred in front of the wall: a task whose
two ways around the wall (left or right) have a mean that walks into it.

Why another start: Metaworld's reach-wall-v3 starts the fingertips at (0.005, 0.60, 0.195), 7.5 cm
above the wall's top (z 0.12), so a straight reach passes over the wall and the wall decides
nothing. Here the hand's reset target is LOW_START = (0.10, 0.50, 0.09): the fingertips start
below the wall's top, 24 cm in front of its front face (y 0.74) and on its centre line (x 0.10),
so every goal (behind the wall, where Metaworld draws them) is reached only around one of its
ends (or over it). Everything else is Metaworld's reach-wall-v3 as its MT1 benchmark defines it:
the 50 goal variations, success when the fingertips are within 5 cm of the goal, 500 steps.

The start is the same for every seed (Metaworld moves the hand to its reset target the same way
each time), so at t = 0 the observation carries no cue about which way to go round. With
`start_spread` > 0 the start moves sideways by a per-seed uniform offset in [-spread, spread]:
the control, a start that hints a side (benchmarks/averaging_task.py measures both).

What the wall does to a hand pressed against it (measured here): the action moves Metaworld's
mocap target, which runs on while the hand stays at the wall (fingertips stop at y 0.72); a
sideways command of 0.3 for 60 steps then moved the mocap 18 cm but the hand 3 cm. So a policy
that walks into the wall's middle barely slides along it: its state stops telling it anything new.
The contact also squeezes the fingers: the finger opening (obs[3]) drops from 1.00 to ~0.69, a
reading no demonstration that stays off the wall has.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lwd.envs.metaworld import ACTION_DIM, MAX_EPISODE_STEPS, OBS_DIM, MetaworldTaskEnv

__all__ = ["ACTION_DIM", "LOW_START", "MAX_EPISODE_STEPS", "MAX_START_SPREAD", "OBS_DIM", "TASK", "ReachWallLowEnv"]

TASK = "reach-wall-v3"
LOW_START = np.array([0.10, 0.50, 0.09])
"""The hand's reset target (Metaworld's `hand_init_pos`); the fingertips settle at (0.105, 0.501, 0.085)."""
MAX_START_SPREAD = 0.10
"""m: a larger sideways offset would start the hand beside the wall's ends (x -0.02 and 0.22)."""
START_SALT = 0x5A11
"""Salt of the per-seed start offset ([seed, salt]): independent of the goal and style draws."""


class ReachWallLowEnv(MetaworldTaskEnv):
    """reach-wall-v3 from LOW_START (see the module docstring); `reset(seed=s)` as Metaworld's MT1."""

    def __init__(self, start_spread: float = 0.0, **kwargs: Any) -> None:
        if not 0.0 <= start_spread <= MAX_START_SPREAD:
            raise ValueError(f"start_spread must be in [0, {MAX_START_SPREAD}] m (the start stays in front of the wall), "
                             f"got {start_spread}")
        super().__init__(TASK, suite="mt1", **kwargs)
        self.start_spread = float(start_spread)

    def hand_start(self, seed: int) -> np.ndarray:
        """The hand's reset target of episode `seed`: LOW_START, moved sideways when start_spread > 0."""
        offset = np.random.default_rng([int(seed), START_SALT]).uniform(-1.0, 1.0) * self.start_spread
        return LOW_START + np.array([offset, 0.0, 0.0])

    def wall_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The wall's collision box as the simulator has it: (lower corner, upper corner), (3,) each."""
        model = self._env.model
        body = model.body("wall").id
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body and model.geom_contype[g]]
        centre = model.body_pos[body] + model.geom_pos[geoms[0]]
        half = model.geom_size[geoms[0]]
        return centre - half, centre + half

    def _reset(self, seed: int, options: dict | None) -> tuple[np.ndarray, dict]:
        self._env.hand_init_pos = self.hand_start(seed)  # read by Metaworld's reset (_reset_hand)
        obs, info = super()._reset(seed, options)
        return obs, dict(info, hand_start=self._env.hand_init_pos.copy())
