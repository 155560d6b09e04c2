"""robomimic's HDF5 dataset layout <-> our episode store.

robomimic (v0.3+) keeps one group per demonstration::

    data                        attrs: total (int, steps in all demos), env_args (JSON string)
    data/demo_<i>               attrs: num_samples (int)
    data/demo_<i>/obs/<key>     (T, D) one array per observation key
    data/demo_<i>/next_obs/<key>  (T, D) optional: the observation after each step
    data/demo_<i>/actions       (T, Da)
    data/demo_<i>/states        (T, S) optional: flattened MuJoCo state (time, qpos, qvel)
    data/demo_<i>/rewards       (T,)  optional
    data/demo_<i>/dones         (T,)  optional
    mask/<filter_key>           (M,) bytes: names of the demos in a split, e.g. b"demo_3"

A low-dim policy input is the chosen obs keys concatenated in a fixed order, so the reader takes
that order explicitly (`lwd.envs.robomimic.OBS_KEYS` for robomimic's own tasks) and records it,
with each key's width, in the result's attrs; the writer splits the columns back per key.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lwd.data.episodes import Episodes
from lwd.data.errors import DatasetError
from lwd.data.keys import ACTION, OBS
from lwd.optional import require

SIM_STATE = "sim_state"
REWARD = "reward"
#: robosuite env name -> our robomimic task name (recorded in attrs when recognised).
_TASK_OF_ENV = {"Lift": "lift", "PickPlaceCan": "can", "NutAssemblySquare": "square"}


def _import_h5py() -> Any:
    return require("h5py", "robomimic")


def _natural_key(name: str) -> tuple[Any, ...]:
    """demo_2 sorts before demo_10 (robomimic names demos by an unpadded index)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _decode(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)


def _as_2d(array: np.ndarray) -> np.ndarray:
    return array.reshape(len(array), -1) if array.ndim != 1 else array[:, None]


def load_robomimic_hdf5(
    path: str | os.PathLike[str],
    obs_keys: Sequence[str],
    filter_key: str | None = None,
) -> Episodes:
    """Read a robomimic HDF5 file into `Episodes` (``obs``, ``action``, and ``sim_state``/``reward`` if stored).

    Args:
        path: the ``.hdf5`` file.
        obs_keys: observation keys to concatenate, in this order, into ``obs`` (N, sum of widths).
        filter_key: read only the demos listed in ``mask/<filter_key>`` (e.g. "train", "valid").

    Demos come in natural numeric order (demo_2 before demo_10). ``sim_state`` (float64) comes
    from ``states`` and ``reward`` from ``rewards`` when every selected demo has them. attrs:
    ``source`` (path), ``format``, ``env_args`` (dict), ``obs_keys`` ([[key, width], ...]),
    ``demos`` (names), ``filter_key``, and ``robomimic_task`` when the env is Lift/Can/Square.
    """
    h5py = _import_h5py()
    path = Path(path)
    obs_keys = list(obs_keys)
    if not obs_keys:
        raise DatasetError("obs_keys is empty: name at least one observation key, e.g. robot0_eef_pos")
    if not path.exists():
        raise DatasetError(f"robomimic dataset {path} does not exist")
    if not path.is_file() or not h5py.is_hdf5(str(path)):
        raise DatasetError(f"{path} is not an HDF5 file (expected a robomimic .hdf5 dataset)")
    try:
        handle = h5py.File(str(path), "r")
    except OSError as exc:
        raise DatasetError(f"cannot open {path} as HDF5: {exc}") from exc
    with handle as f:
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise DatasetError(f"{path} has no 'data' group; it is not a robomimic dataset (top-level: {sorted(f.keys())})")
        data = f["data"]
        names = sorted((k for k in data.keys() if isinstance(data[k], h5py.Group)), key=_natural_key)
        if not names:
            raise DatasetError(f"{path}: 'data' holds no demos (expected groups data/demo_0, data/demo_1, ...)")
        if filter_key is not None:
            names = _filtered(f, path, names, filter_key)
        env_args = _env_args(data, path)
        episodes = [_read_demo(data[name], f"{path}:data/{name}", obs_keys) for name in names]

    dims: dict[str, int] = {}
    for name, (obs_parts, _, _) in zip(names, episodes):
        for key, part in zip(obs_keys, obs_parts):
            width = part.shape[1]
            if dims.setdefault(key, width) != width:
                raise DatasetError(
                    f"{path}: obs key '{key}' is {width}-d in {name} but {dims[key]}-d in {names[0]}; "
                    "every demo must have the same observation widths"
                )
    extras_sets = [set(extra) for _, _, extra in episodes]
    common = set.intersection(*extras_sets)
    for key in sorted(common):
        widths = {extra[key].shape[1:] for _, _, extra in episodes}
        if len(widths) > 1:
            raise DatasetError(f"{path}: '{key}' has different per-step shapes across demos: {sorted(widths)}")

    rows = []
    for obs_parts, action, extra in episodes:
        row = {OBS: np.concatenate(obs_parts, axis=1), ACTION: action}
        row.update({k: v for k, v in extra.items() if k in common})
        rows.append(row)
    attrs: dict[str, Any] = {
        "source": str(path),
        "format": "robomimic_hdf5",
        "env_args": env_args,
        "obs_keys": [[key, dims[key]] for key in obs_keys],
        "demos": names,
        "filter_key": filter_key,
    }
    task = _TASK_OF_ENV.get(str(env_args.get("env_name", "")))
    if task is not None:
        attrs["robomimic_task"] = task
    return Episodes.from_list(rows, attrs=attrs)


def _filtered(f: Any, path: Path, names: list[str], filter_key: str) -> list[str]:
    masks = sorted(f["mask"].keys()) if "mask" in f else []
    if filter_key not in masks:
        listed = ", ".join(masks) if masks else "none (the file has no 'mask' group)"
        raise DatasetError(f"{path}: unknown filter key {filter_key!r}; available filter keys: {listed}")
    wanted = {_decode(n) for n in np.asarray(f["mask"][filter_key][()]).ravel()}
    missing = sorted(wanted - set(names), key=_natural_key)
    if missing:
        raise DatasetError(f"{path}: mask/{filter_key} names demos that are not in 'data': {missing[:5]}")
    selected = [n for n in names if n in wanted]
    if not selected:
        raise DatasetError(f"{path}: mask/{filter_key} is empty (no demos to read)")
    return selected


def _env_args(data: Any, path: Path) -> dict[str, Any]:
    raw = data.attrs.get("env_args")
    if raw is None:
        return {}
    try:
        parsed = json.loads(_decode(raw))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: data.attrs['env_args'] is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise DatasetError(f"{path}: data.attrs['env_args'] must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _read_demo(demo: Any, where: str, obs_keys: list[str]) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    if "actions" not in demo:
        raise DatasetError(f"{where} has no 'actions' array (keys: {sorted(demo.keys())})")
    if "obs" not in demo:
        raise DatasetError(f"{where} has no 'obs' group (keys: {sorted(demo.keys())})")
    available = sorted(demo["obs"].keys())
    missing = [k for k in obs_keys if k not in available]
    if missing:
        raise DatasetError(f"{where}: obs key(s) {missing} not found; available obs keys: {available}")
    action = _as_2d(np.asarray(demo["actions"][()]))
    length = len(action)
    if length == 0:
        raise DatasetError(f"{where} is empty (0 steps)")
    obs_parts = []
    for key in obs_keys:
        part = np.asarray(demo["obs"][key][()])
        if part.ndim == 0 or len(part) != length:
            steps = "a scalar" if part.ndim == 0 else f"{len(part)} steps"
            raise DatasetError(f"{where}: obs/{key} has {steps} but actions has {length}; ragged demo")
        obs_parts.append(_as_2d(part))
    extra: dict[str, np.ndarray] = {}
    for stored, ours in (("states", SIM_STATE), ("rewards", REWARD)):
        if stored in demo:
            value = np.asarray(demo[stored][()])
            if value.ndim == 0 or len(value) != length:
                raise DatasetError(f"{where}: {stored} has shape {value.shape} but actions has {length} steps; ragged demo")
            extra[ours] = value.astype(np.float64) if ours == SIM_STATE else value.reshape(length)
    return obs_parts, action, extra


def save_robomimic_hdf5(
    episodes: Episodes,
    path: str | os.PathLike[str],
    obs_keys_dims: Mapping[str, int] | Sequence[tuple[str, int]],
    env_args: Mapping[str, Any],
    filter_keys: Mapping[str, Sequence[int]] | None = None,
    success_reward_at_end: bool = True,
) -> Path:
    """Write `episodes` in robomimic's layout; returns the path. The file appears atomically.

    Args:
        episodes: with ``obs`` whose columns are `obs_keys_dims` concatenated in order.
        obs_keys_dims: key -> width, in column order (e.g. `lwd.envs.robomimic.obs_key_dims(task)`).
        env_args: robomimic's env metadata (`RobomimicEnv.env_args()`), stored as JSON.
        filter_keys: split name -> episode indices, written as ``mask/<name>`` demo-name lists.
        success_reward_at_end: without a ``reward`` key, rewards are 0 except 1 at each demo's
            last step (robomimic's sparse reward for a demo that ends at its first success, as
            `lwd.demos.collect_demos` records them); False writes all zeros.

    Per demo: ``obs/<key>`` and ``actions`` (float64, as robomimic stores them), ``states`` from
    ``sim_state`` if present, ``rewards``, ``dones`` (1 at the last step), ``num_samples``, and
    ``next_obs/<key>`` (robomimic's loaders read it by default): the next step's obs, with the
    last step repeating its own obs since the store keeps no final observation. A ``task`` key
    has no robomimic counterpart and is not written.
    """
    h5py = _import_h5py()
    path = Path(path)
    pairs = list(obs_keys_dims.items()) if isinstance(obs_keys_dims, Mapping) else [tuple(p) for p in obs_keys_dims]
    widths = [int(w) for _, w in pairs]
    if not pairs or any(w <= 0 for w in widths):
        raise DatasetError(f"obs_keys_dims must name at least one key with a positive width, got {pairs}")
    obs_dim = episodes.data[OBS].shape[1]
    if sum(widths) != obs_dim:
        raise DatasetError(f"obs_keys_dims {pairs} add up to {sum(widths)} columns but obs is {obs_dim}-d")
    split_at = np.cumsum(widths)[:-1]
    filter_keys = dict(filter_keys or {})
    for name, indices in filter_keys.items():
        bad = [int(i) for i in indices if not 0 <= int(i) < episodes.num_episodes]
        if bad:
            raise DatasetError(f"filter key {name!r} lists episode indices {bad[:5]} outside [0, {episodes.num_episodes})")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with h5py.File(str(tmp), "w") as f:
            data = f.create_group("data")
            for i in range(episodes.num_episodes):
                _write_demo(data.create_group(f"demo_{i}"), episodes.episode(i), pairs, split_at, success_reward_at_end)
            data.attrs["total"] = int(episodes.num_steps)
            data.attrs["env_args"] = json.dumps(dict(env_args))
            if filter_keys:
                mask = f.create_group("mask")
                for name, indices in filter_keys.items():
                    mask.create_dataset(name, data=np.array([f"demo_{int(i)}".encode() for i in indices], dtype="S"))
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def _write_demo(
    group: Any,
    episode: Mapping[str, np.ndarray],
    pairs: list[tuple[str, int]],
    split_at: np.ndarray,
    success_reward_at_end: bool,
) -> None:
    obs = np.asarray(episode[OBS], np.float64)
    length = len(obs)
    next_obs = np.concatenate([obs[1:], obs[-1:]], axis=0)
    obs_group, next_group = group.create_group("obs"), group.create_group("next_obs")
    for (key, _), part, next_part in zip(pairs, np.split(obs, split_at, axis=1), np.split(next_obs, split_at, axis=1)):
        obs_group.create_dataset(key, data=part)
        next_group.create_dataset(key, data=next_part)
    group.create_dataset("actions", data=np.asarray(episode[ACTION], np.float64))
    if SIM_STATE in episode:
        group.create_dataset("states", data=np.asarray(episode[SIM_STATE], np.float64))
    if REWARD in episode:
        rewards = np.asarray(episode[REWARD], np.float64).reshape(length)
    else:
        rewards = np.zeros(length)
        rewards[-1] = 1.0 if success_reward_at_end else 0.0
    group.create_dataset("rewards", data=rewards)
    dones = np.zeros(length, np.int64)
    dones[-1] = 1
    group.create_dataset("dones", data=dones)
    group.attrs["num_samples"] = int(length)
