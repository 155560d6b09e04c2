"""PushT (gym-pusht 0.1.8) as a seeded gymnasium env with Diffusion Policy's observations.

The task: a disc agent (radius 15 px) driven by a PD controller towards an absolute target
(the action, in pixels of the 512 x 512 arena) pushes a T-shaped block onto a fixed goal pose
(x 256, y 256, angle pi/4). An episode succeeds when the block covers more than 95% of the goal
T's area (gym-pusht's own flag); Diffusion Policy reports the per-episode max of
clip(coverage / 0.95, 0, 1) as its "mean_score", so `info` carries both.

Observation types (`LOW_DIMS`, obs type -> dim of the low-dim observation):
- "keypoints" (default, 20-d): Diffusion Policy's low-dim PushT observation, 9 block keypoints
  (x, y) flattened, then the agent (x, y), all in pixels. The keypoints are a fixed rigid set in
  the block's own frame (`BLOCK_KEYPOINTS_LOCAL`), so a model trained on DP's recorded
  `data/keypoint` arrays sees the same numbers here.
- "state" (5-d): gym-pusht's state, agent x, y, block x, y, block angle (mod 2 pi). The block
  position is the origin of its local frame (the middle of the top edge of the T's bar), not its
  centre of mass, which is at (0, 45) in that frame.
- "image": Diffusion Policy's PushT image observation, a dict ``{"obs": agent x, y (2-d, px),
  "image": (96, 96, 3) uint8}``: gym-pusht's own ``obs_type="pixels_agent_pos"`` frame, rendered
  at ``observation_width = observation_height = 96`` (its default; the 680 px
  ``visualization_*`` size is only for ``render()``): the 512 x 512 arena drawn by pygame, then
  resized with OpenCV, no action marker. The keys are the episode store's (``obs`` and the image
  key ``image``, see ``lwd.data.frames``), so a recorded step is the observation as it was seen.
  Rendering costs every step (gym-pusht draws the frame inside ``step``).

Every episode is identified by its seed: `reset` requires one, and the same seed with the same
actions gives the same episode bit for bit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lwd.envs.base import SeededTaskEnv
from lwd.optional import require

ACTION_DIM = 2
MAX_EPISODE_STEPS = 300
OBS_TYPES: dict[str, int] = {"keypoints": 20, "state": 5}
"""Obs types whose observation is one array -> its dim."""
IMAGE_OBS_TYPE = "image"
LOW_DIMS: dict[str, int] = {**OBS_TYPES, IMAGE_OBS_TYPE: 2}
"""Every obs type -> dim of its low-dim observation ("image": the agent position beside the frame)."""
DEFAULT_OBS_TYPE = "keypoints"
IMAGE_KEY = "image"
IMAGE_SIZE = 96
"""Frame side in pixels: Diffusion Policy's PushT image task (`shape_meta.obs.image: [3, 96, 96]`)."""
SUCCESS_COVERAGE = 0.95
ARENA_SIZE = 512.0
GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])
"""Goal pose of the block (x, y of its frame origin, angle), fixed in gym-pusht."""

BLOCK_KEYPOINTS_LOCAL = np.array(
    [
        [9.269786713763871, 90.04097352393619],
        [-60.983472364471474, -1.1867297607997276],
        [60.91275557727772, -1.3933642242328201],
        [-0.2705034390160016, 25.54362499146542],
        [-14.064927576212233, 122.81585355412153],
        [39.002738500170146, 32.857404276587566],
        [-39.966414424694534, 32.729655446429945],
        [-16.82434437939744, 62.86317892234989],
        [23.54146122024909, -1.7002881094626152],
    ]
)
"""The 9 block keypoints of Diffusion Policy's PushT low-dim task, in the block's local frame (px).

DP does not list them: `PymunkKeypointManager.create_from_pusht_env` (real-stanford/
diffusion_policy, diffusion_policy/env/pusht/pymunk_keypoint_manager.py) derives them by drawing
the T at pose (256, 300, 0) with its pygame `DrawOptions` (filled polygons plus a 2 px outline),
taking every non-white pixel as a local coordinate (pixel - (256, 300)), running farthest-point
sampling (9 points) from a start index drawn by `np.random.default_rng(0).choice(n_pixels)`,
then adding `rng.uniform(0, 1, (9, 2))` from the same generator. The numbers above are the result
of re-running that procedure here (gym-pusht's identical `DrawOptions`, pygame 2.6.1: 7507 mask
pixels, start index 6385). They are exact if DP's pygame drew the same mask; DP's recorded
`data/keypoint` arrays can confirm this: keypoints == block_keypoints(state[2:4], state[4]).
"""

STATE_LAYOUT: tuple[str, ...] = (
    "agent_x", "agent_y", "agent_vx", "agent_vy",
    "block_x", "block_y", "block_angle", "block_vx", "block_vy", "block_angular_velocity",
)
"""Layout of info["state"] (float64): positions in px, velocities in px/s and rad/s. The block
position is the origin of its frame (as in the "state" observation), the angle is pymunk's raw
(unwrapped) angle. Enough to rebuild the simulator (set the angle before the position)."""


def block_keypoints(block_xy: np.ndarray, angle: float) -> np.ndarray:
    """World (pixel) coordinates of the 9 DP keypoints for a block at `block_xy` with `angle`: (9, 2).

    A rigid transform of `BLOCK_KEYPOINTS_LOCAL`, as DP's `skimage` AffineTransform(translation=
    position, rotation=angle) applies it.
    """
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return BLOCK_KEYPOINTS_LOCAL @ rot.T + np.asarray(block_xy, dtype=np.float64)[:2]


def keypoint_obs(state5: np.ndarray) -> np.ndarray:
    """DP's 20-d low-dim observation from gym-pusht's 5-d state (agent x, y, block x, y, angle)."""
    state5 = np.asarray(state5, dtype=np.float64)
    return np.concatenate([block_keypoints(state5[2:4], float(state5[4])).reshape(-1), state5[:2]])


def _import_gym_pusht() -> Any:
    return require("gym_pusht", "pusht", "gym-pusht")  # registers gym_pusht/PushT-v0


class PushTEnv(SeededTaskEnv):
    """gym-pusht's PushT with a required reset seed, DP's keypoint observation and a rich `info`.

    info (on reset and every step): "success" (coverage > 0.95, gym-pusht's flag), "coverage",
    "score" (= DP's reward, clip(coverage / 0.95, 0, 1); also the step reward) and "state" (the
    privileged simulator state, `STATE_LAYOUT`), which experts may read and policies never see.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_type: str = DEFAULT_OBS_TYPE,
        terminate_on_success: bool = True,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_mode: str | None = None,
    ) -> None:
        if obs_type not in LOW_DIMS:
            raise ValueError(f"unknown PushT obs_type {obs_type!r}; known: {', '.join(LOW_DIMS)}")
        _import_gym_pusht()
        super().__init__(LOW_DIMS[obs_type], 0.0, ARENA_SIZE, ACTION_DIM, terminate_on_success, max_episode_steps, render_mode)
        # The unwrapped env: gym.make's TimeLimit/OrderEnforcing would duplicate what we do here.
        # gym-pusht renders only on request (or, for pixel observations, once per step), so an
        # rgb_array renderer costs nothing until used.
        if obs_type == IMAGE_OBS_TYPE:
            self._env = gym.make("gym_pusht/PushT-v0", obs_type="pixels_agent_pos", render_mode="rgb_array",
                                 observation_width=IMAGE_SIZE, observation_height=IMAGE_SIZE).unwrapped
            self.observation_space = gym.spaces.Dict({
                "obs": self.observation_space,
                IMAGE_KEY: gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
            })
        else:
            self._env = gym.make("gym_pusht/PushT-v0", obs_type="state", render_mode="rgb_array").unwrapped
        self.obs_type = obs_type

    # --- observation and info -------------------------------------------------------------
    def _state5(self) -> np.ndarray:
        return np.asarray(self._env.get_obs(), dtype=np.float64)

    def _obs(self, inner: Any = None) -> np.ndarray | dict[str, np.ndarray]:
        """The observation; `inner` is gym-pusht's own (used for "image": its frame, drawn once)."""
        if self.obs_type == IMAGE_OBS_TYPE:
            return {"obs": np.asarray(inner["agent_pos"], dtype=np.float32), IMAGE_KEY: np.asarray(inner["pixels"], np.uint8)}
        state5 = self._state5()
        obs = state5 if self.obs_type == "state" else keypoint_obs(state5)
        return obs.astype(np.float32)

    def sim_state(self) -> np.ndarray:
        """The privileged full state (`STATE_LAYOUT`), float64."""
        agent, block = self._env.agent, self._env.block
        return np.array(
            [*agent.position, *agent.velocity, *block.position, block.angle, *block.velocity, block.angular_velocity],
            dtype=np.float64,
        )

    def _info(self, coverage: float) -> dict[str, Any]:
        return {
            "success": bool(coverage > SUCCESS_COVERAGE),
            "coverage": float(coverage),
            "score": float(np.clip(coverage / SUCCESS_COVERAGE, 0.0, 1.0)),
            "state": self.sim_state(),
        }

    # --- gymnasium API ----------------------------------------------------------------------
    def _reset(self, seed: int, options: dict | None) -> tuple[Any, dict]:
        inner_obs, _ = self._env.reset(seed=seed, options=options)
        return self._obs(inner_obs), self._info(self._env._get_coverage())

    def _advance(self, action: np.ndarray) -> tuple[Any, float, dict]:
        inner_obs, _, _, _, inner = self._env.step(action)
        info = self._info(inner["coverage"])
        return self._obs(inner_obs), info["score"], info

    PUSH_NAME = "block-push"
    PUSH_UNIT = "pixels"

    def push_object(self, rng: np.random.Generator, magnitude: float) -> None:
        """Teleport the T-block by `magnitude` pixels (no rotation) in a uniformly random direction.

        Units: `magnitude` is a distance in arena pixels (the arena is 512 px wide; the T's bar is
        120 px long). The direction is drawn from `rng` (uniform angle); if the moved block would
        cross the arena walls, up to 16 fresh directions are drawn, and failing those the
        displacement is shortened (halved until it fits, down to no move), so the block always
        stays inside. The angle is unchanged, velocities are zeroed, and the shapes are reindexed
        so the next physics step sees the new pose. A block moved onto the agent is pushed out
        by the physics on the next step, as a real disturbance would be.
        """
        block = self._env.block
        origin = np.array(block.position, dtype=np.float64)
        corners = np.array([block.local_to_world(v) for s in block.shapes for v in s.get_vertices()])
        # Inner faces of gym-pusht's walls (segments at 5 and 506, radius 2); a block already
        # pressed past them (contacts are soft) may not go further out, only back in.
        lo, hi = min(7.0, corners.min()), max(504.0, corners.max())

        def fits(shift: np.ndarray) -> bool:
            moved = corners + shift
            return bool(moved.min() >= lo and moved.max() <= hi)

        shift = np.zeros(2)
        for _ in range(16):
            theta = rng.uniform(-np.pi, np.pi)
            candidate = magnitude * np.array([np.cos(theta), np.sin(theta)])
            if fits(candidate):
                shift = candidate
                break
        else:
            candidate = magnitude * np.array([np.cos(theta), np.sin(theta)])
            while np.linalg.norm(candidate) > 1e-3 and not fits(candidate):
                candidate = candidate / 2.0
            shift = candidate if fits(candidate) else np.zeros(2)
        block.position = tuple(origin + shift)
        block.velocity = (0.0, 0.0)
        block.angular_velocity = 0.0
        self._env.space.reindex_shapes_for_body(block)
