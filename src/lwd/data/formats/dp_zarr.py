"""Diffusion Policy's PushT replay buffer (zarr) -> our episode store.

The reference PushT data (`pusht_cchi_v7_replay.zarr`, 206 human demonstrations) is a zarr
group, as a directory or a `.zarr.zip`, holding::

    data/state       (N, 5)     agent x, y, block x, y, block angle (pixels, radians)
    data/keypoint    (N, 9, 2)  the T-block's 9 keypoints (pixels)
    data/action      (N, 2)     absolute agent target (pixels)
    data/img         (N, 96, 96, 3)  uint8 frames: read only with obs_type="image"
    meta/episode_ends (E,)      exclusive end index of each episode

Diffusion Policy's low-dim PushT observation is the flattened keypoints followed by the agent
position (20-d); `obs_type="keypoints"` builds exactly that, `obs_type="state"` keeps the 5-d
state, and `obs_type="image"` is DP's PushT image task: the 2-d agent position beside the frames,
opened (not read) as the image key ``image`` (`lwd.data.frames`). The result is tagged with the
matching suite (`pusht`, `pusht/state` or `pusht/image`), so `lwd train` and `lwd eval` pick the
right environment without further flags.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lwd.data.episodes import Episodes
from lwd.data.errors import DatasetError
from lwd.data.keys import ACTION, OBS

IMAGE_KEY = "image"
"""Our name of DP's `img` (PushT's one camera; `lwd.data.frames` names image keys)."""
IMAGE_SIZE = 96

NUM_KEYPOINTS = 9
#: Above this many pixels between the file's keypoints and ours, the observation would not match
#: what our env produces at evaluation time, so the import refuses (see `check_keypoints`).
KEYPOINT_TOLERANCE_PX = 1e-2


def load_dp_pusht(path: str | os.PathLike[str], obs_type: str = "keypoints", check_keypoints: bool = True) -> Episodes:
    """Read a Diffusion Policy PushT zarr into `Episodes` with `obs` and `action`.

    Args:
        path: `.zarr` directory or `.zarr.zip` in DP's replay-buffer layout.
        obs_type: "keypoints" (20-d: 9x2 keypoints then agent x, y; DP's low-dim obs), "state" (5-d)
            or "image" (agent x, y beside the 96 x 96 frames, DP's image task).
        check_keypoints: verify that the file's keypoints equal those our env computes from the
            recorded state, so a model trained on this file sees the same observation in `lwd eval`.
    """
    if obs_type not in ("keypoints", "state", "image"):
        raise ValueError(f"obs_type must be 'keypoints', 'state' or 'image', got {obs_type!r}")
    wanted = ["state", "action"] + (["keypoint"] if obs_type == "keypoints" else []) + (["img"] if obs_type == "image" else [])
    raw = Episodes.load(path, keys=wanted, rename={"state": OBS, "img": IMAGE_KEY},
                        image_keys=("img",) if obs_type == "image" else ())  # validated: lengths, NaN/inf, frames
    state, action = raw.data[OBS], raw.data[ACTION]
    if state.ndim != 2 or state.shape[1] != 5:
        raise DatasetError(f"{path}: data/state must be (N, 5) (agent x, y, block x, y, angle), got {state.shape}")
    if action.ndim != 2 or action.shape[1] != 2:
        raise DatasetError(f"{path}: data/action must be (N, 2) (agent target x, y), got {action.shape}")
    if obs_type == "keypoints":
        keypoint = raw.data["keypoint"]
        if keypoint.shape[1:] != (NUM_KEYPOINTS, 2):
            raise DatasetError(f"{path}: data/keypoint must be (N, {NUM_KEYPOINTS}, 2), got {keypoint.shape}")
        if check_keypoints:
            _check_keypoints(path, state, keypoint)
        obs = np.concatenate([keypoint.reshape(len(keypoint), -1), state[:, :2]], axis=1)  # (N, 20)
    elif obs_type == "image":
        shape = raw.frames[IMAGE_KEY].frame_shape
        if shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
            raise DatasetError(f"{path}: data/img holds {shape} frames but the pusht/image env renders "
                               f"({IMAGE_SIZE}, {IMAGE_SIZE}, 3); a model trained on them could not be evaluated here")
        obs = state[:, :2]  # (N, 2) agent position
    else:
        obs = state  # (N, 5)
    attrs: dict[str, Any] = {
        "suite": {"keypoints": "pusht", "state": "pusht/state", "image": "pusht/image"}[obs_type],
        "tasks": ["pusht"],
        "source": f"Diffusion Policy PushT zarr: {os.fspath(path)}",
        "obs_type": obs_type,
    }
    return Episodes(data={OBS: obs, ACTION: action}, episode_ends=raw.episode_ends.copy(), attrs=attrs, frames=raw.frames)


def _check_keypoints(path: Any, state: np.ndarray, keypoint: np.ndarray) -> None:
    """Refuse a file whose keypoints are not the rigid transform of our env's local keypoints."""
    from lwd.envs.pusht import block_keypoints

    ours = np.stack([block_keypoints(s[2:4], s[4]) for s in state])  # (N, 9, 2)
    error = np.abs(ours - keypoint).max(axis=(1, 2))  # (N,)
    worst = int(error.argmax())
    if error[worst] > KEYPOINT_TOLERANCE_PX:
        raise DatasetError(
            f"{path}: data/keypoint does not match the keypoints lwd's PushT env computes from data/state "
            f"(off by {error[worst]:.2f} px at step {worst}); a model trained on it would see other observations "
            "at evaluation. Import with --obs-type state (Python: obs_type='state'), or pass --no-keypoint-check "
            "(check_keypoints=False) if you evaluate elsewhere"
        )
