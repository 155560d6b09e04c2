"""lwd's PushT demos in LeRobot's PushT layout, the observations lerobot-eval's `pusht` env gives
with `--env.obs_type=environment_state_agent_pos`:

    observation.state              (2)   the agent's position
    observation.environment_state  (16)  gym-pusht's keypoints of the T: the 8 corners of its two
                                         rectangles, rotated by the block's angle and moved to its position

Demos must be recorded with lwd's `pusht/state` observation (agent x, y, block x, y, angle), from
which the keypoints follow exactly (gym-pusht's `get_keypoints`, to float rounding).

    lwd demos pusht/state --episodes 50 --out demos.zarr
    python -m lerobot_policy_lwd.pusht demos.zarr --out dataset      # lwd's save_lerobot writes it
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lwd.data import Episodes
from lwd.data.formats.lerobot import save_lerobot
from lwd.data.keys import OBS

LAYOUT = (("observation.state", 2), ("observation.environment_state", 16))


def block_vertices() -> np.ndarray:
    """The T's 8 corners in the block's frame, as gym-pusht lists them (its shapes' vertices): (8, 2)."""
    import gymnasium as gym
    import gym_pusht  # noqa: F401  (registers the env)

    env = gym.make("gym_pusht/PushT-v0", obs_type="state").unwrapped
    env.reset(seed=0)
    return np.array([[v.x, v.y] for shape in env._block_shapes for v in shape.get_vertices()], np.float64)


def lerobot_observations(state5: np.ndarray) -> np.ndarray:
    """(N, 5) gym-pusht states -> (N, 18): agent position, then the 16 keypoint coordinates."""
    state5 = np.asarray(state5, np.float64)
    cos, sin = np.cos(state5[:, 4:5]), np.sin(state5[:, 4:5])  # (N, 1)
    lx, ly = block_vertices().T  # (8,) each
    x = lx * cos - ly * sin + state5[:, 2:3]  # (N, 8)
    y = lx * sin + ly * cos + state5[:, 3:4]
    keypoints = np.stack([x, y], axis=-1)  # (N, 8, 2): x0, y0, x1, y1, ... as gym-pusht flattens them
    return np.concatenate([state5[:, :2], keypoints.reshape(len(state5), 16)], axis=1).astype(np.float32)


def export(demos: str | Path, out: str | Path, fps: int = 10) -> Path:
    episodes = Episodes.load(demos)
    if episodes.attrs.get("suite") != "pusht/state" or episodes.data[OBS].shape[1] != 5:
        raise SystemExit(f"{demos}: needs demos recorded with `lwd demos pusht/state` (5-d observations), "
                         f"got suite {episodes.attrs.get('suite')!r} with {episodes.data[OBS].shape[1]}-d observations")
    data = {**episodes.data, OBS: lerobot_observations(episodes.data[OBS])}
    converted = Episodes(data, episodes.episode_ends, attrs={**episodes.attrs, "suite": "pusht (LeRobot layout)"})
    return save_lerobot(converted, out, fps=fps, robot_type="pusht", state_features=LAYOUT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lerobot_policy_lwd.pusht", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demos", help="episode store written by `lwd demos pusht/state`")
    parser.add_argument("--out", required=True, help="a new LeRobot dataset folder")
    parser.add_argument("--fps", type=int, default=10)
    args = parser.parse_args(argv)
    root = export(args.demos, args.out, args.fps)
    print(f"wrote {root} (LeRobot v3.0, PushT layout: observation.state 2 + observation.environment_state 16)")


if __name__ == "__main__":
    main()
