"""LeRobot datasets (codebase v3.0) <-> our episode store, with pyarrow and without the lerobot package.

The v3.0 layout, as LeRobot 0.4's own writer makes it:

    meta/info.json                             codebase_version, fps, features {name: {dtype, shape, names}}, ...
    meta/tasks.parquet                         one row per task: task_index, the task string as the (pandas) index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: episode_index, tasks, length,
                                               dataset_from_index / dataset_to_index, data/chunk_index, ...
    data/chunk-000/file-000.parquet            one row per frame: the features (vectors as fixed-size
                                               lists), timestamp, frame_index, episode_index, index, task_index

Import: the observation is the concatenation of the chosen state features (by default
`observation.state`, plus `observation.environment_state` where present), the action is `action`;
each distinct task string becomes a task id (kept in the store's `tasks`), so task-conditioned
training works on multi-task datasets. Image and video features are not read: lwd trains on
low-dimensional states. Export writes our demos in the same layout (state only, no videos).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lwd.data.episodes import Episodes
from lwd.data.errors import DatasetError
from lwd.data.keys import ACTION, OBS, TASK
from lwd.optional import require

CODEBASE_VERSION = "v3.0"
DEFAULT_STATE_FEATURES = ("observation.state", "observation.environment_state")
_INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
_VISUAL = ("image", "video")


def _pq() -> Any:
    require("pyarrow", "lerobot")
    import pyarrow.parquet as pq

    return pq


def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise DatasetError(f"{root} is not a LeRobot dataset: meta/info.json is missing")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(info, dict):
        raise DatasetError(f"{path} must hold a JSON object, got {type(info).__name__}")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetError(f"{root}: LeRobot codebase_version {version!r} is not supported; lwd reads {CODEBASE_VERSION} "
                           "(convert older datasets with lerobot's convert_dataset_v21_to_v30)")
    if not isinstance(info.get("features"), dict):
        raise DatasetError(f"{path} has no 'features' table")
    for name, feature in info["features"].items():
        if not isinstance(feature, dict):
            raise DatasetError(f"{path}: features.{name} must be an object with dtype and shape, got {feature!r}")
        shape = feature.get("shape", [])
        if not isinstance(shape, list) or any(type(n) is not int or n < 1 for n in shape):
            raise DatasetError(f"{path}: features.{name}.shape must be a list of positive integers, got {shape!r}")
    return info


def _choose_state(info: dict[str, Any], state_features: Sequence[str] | None, action_feature: str) -> list[str]:
    features = info["features"]
    numeric = [k for k, v in features.items() if v.get("dtype") not in (*_VISUAL, "string") and k not in _INDEX_FEATURES]
    visual = [k for k, v in features.items() if v.get("dtype") in _VISUAL]
    if action_feature not in features:
        raise DatasetError(f"no feature {action_feature!r} for the action; the dataset has {sorted(features)}")
    if features[action_feature].get("dtype") in (*_VISUAL, "string"):
        raise DatasetError(f"the action feature {action_feature!r} is declared {features[action_feature]['dtype']!r} in info.json; "
                           "an action must be a numeric vector")
    if state_features:
        repeated = sorted({n for n in state_features if list(state_features).count(n) > 1})
        if repeated:
            raise DatasetError(f"--state-features names {repeated} more than once")
        for name in state_features:
            if name in _INDEX_FEATURES or name == action_feature:
                raise DatasetError(f"--state-features: {name!r} is {'the action' if name == action_feature else 'a bookkeeping column'}, "
                                   f"not a state; available: {[k for k in numeric if k != action_feature]}")
            if name not in features:
                raise DatasetError(f"no feature {name!r} in the dataset; available: {sorted(k for k in features if k not in _INDEX_FEATURES)}")
            if features[name].get("dtype") in _VISUAL:
                raise DatasetError(f"feature {name!r} is an {features[name]['dtype']}; lwd trains on low-dim state features "
                                   f"(available: {[k for k in numeric if k != action_feature]})")
        return list(state_features)
    chosen = [k for k in DEFAULT_STATE_FEATURES if k in features]
    if not chosen:
        others = [k for k in numeric if k != action_feature]
        if visual and not others:
            raise DatasetError(f"image-only dataset: its observations are {visual}; lwd trains on low-dim states and finds none")
        raise DatasetError(f"no {DEFAULT_STATE_FEATURES[0]!r} feature; choose state features with --state-features "
                           f"from {others}")
    return chosen


def _files(root: Path, folder: str) -> list[Path]:
    files = sorted((root / folder).glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{root}: no {folder}/chunk-*/file-*.parquet files")
    return files


def _column(table: Any, name: str, shape: Sequence[int]) -> np.ndarray:
    """A feature column as (N, *shape) float32; ragged or mis-sized rows are an error."""
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    width = int(np.prod(shape)) if shape else 1
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = column.value_lengths().to_numpy(zero_copy_only=False) if not pa.types.is_fixed_size_list(column.type) \
            else np.full(len(column), column.type.list_size)
        if len(lengths) and (lengths.min() != width or lengths.max() != width):
            raise DatasetError(f"feature {name!r} is ragged: rows hold {int(lengths.min())} to {int(lengths.max())} values, "
                               f"but info.json gives shape {list(shape)}")
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), width).astype(np.float32)
    if width != 1:
        raise DatasetError(f"feature {name!r} is a scalar column but info.json gives shape {list(shape)}")
    return column.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)


def _task_strings(root: Path) -> dict[int, str]:
    table = _pq().read_table(root / "meta" / "tasks.parquet") if (root / "meta" / "tasks.parquet").is_file() else None
    if table is None:
        raise DatasetError(f"{root}: meta/tasks.parquet is missing")
    names = table.column_names
    text = next((c for c in ("task", "__index_level_0__") if c in names), None)
    if text is None or "task_index" not in names:
        raise DatasetError(f"{root}/meta/tasks.parquet needs the task strings (its index) and task_index; it has {names}")
    return dict(zip(table.column("task_index").to_pylist(), (str(t) for t in table.column(text).to_pylist())))


def _read_columns(path: Path, columns: list[str]) -> Any:
    """A parquet file's columns, with a missing one named (pyarrow's own error dumps the schema)."""
    pq = _pq()
    try:
        present = pq.read_schema(path).names
    except Exception as err:  # noqa: BLE001  (pyarrow raises its own types for unreadable files)
        raise DatasetError(f"{path} is not a readable parquet file ({' '.join(str(err).split())[:200]})") from err
    missing = [c for c in columns if c not in present]
    if missing:
        raise DatasetError(f"{path} has no column(s) {missing}; a LeRobot v3.0 file needs {columns}")
    return pq.read_table(path, columns=columns)


def load_lerobot(root: str | os.PathLike[str], state_features: Sequence[str] | None = None,
                 action_feature: str = "action") -> Episodes:
    """Read a local LeRobot v3.0 dataset into `Episodes` (obs = the state features, concatenated)."""
    _pq()  # refused with an install hint when pyarrow is missing
    root = Path(root)
    info = _read_info(root)
    chosen = _choose_state(info, state_features, action_feature)
    tasks = _task_strings(root)
    meta = [_read_columns(f, ["episode_index", "length"]) for f in _files(root, "meta/episodes")]
    ep_index = np.concatenate([t.column("episode_index").to_numpy() for t in meta]).astype(np.int64)
    ep_length = np.concatenate([t.column("length").to_numpy() for t in meta]).astype(np.int64)
    order = np.argsort(ep_index)
    ep_index, ep_length = ep_index[order], ep_length[order]

    columns = [*chosen, action_feature, "episode_index", "index", "task_index"]
    tables = [_read_columns(f, columns) for f in _files(root, "data")]
    import pyarrow as pa

    table = pa.concat_tables(tables)
    index = table.column("index").to_numpy()
    if len(np.unique(index)) != len(index):
        raise DatasetError(f"{root}: the 'index' column repeats values ({len(index) - len(np.unique(index))} duplicates); "
                           "it must number every frame once")
    order = np.argsort(index, kind="stable")
    table = table.take(pa.array(order))
    features = info["features"]
    obs = np.concatenate([_column(table, name, features[name].get("shape", [])) for name in chosen], axis=1)
    action = _column(table, action_feature, features[action_feature].get("shape", []))
    frame_episode = table.column("episode_index").to_numpy().astype(np.int64)
    task_index = table.column("task_index").to_numpy().astype(np.int64)

    counts = {int(e): int(c) for e, c in zip(*np.unique(frame_episode, return_counts=True))}
    for episode, length in zip(ep_index, ep_length):
        if counts.get(int(episode), 0) != length:
            raise DatasetError(f"{root}: the data files hold {counts.get(int(episode), 0)} rows of episode {int(episode)} "
                               f"but meta/episodes gives it length {int(length)}")
    if sum(counts.values()) != int(ep_length.sum()):
        raise DatasetError(f"{root}: the data files hold episodes that meta/episodes does not list")
    if (np.diff(frame_episode) < 0).any() or len(np.unique(frame_episode)) != len(ep_index):
        raise DatasetError(f"{root}: episodes are not contiguous in frame index order")
    unknown = sorted(set(task_index.tolist()) - set(tasks))
    if unknown:
        raise DatasetError(f"{root}: frames use task_index {unknown}, which meta/tasks.parquet does not list")
    task_ids = sorted(tasks)
    remap = {t: i for i, t in enumerate(task_ids)}
    data = {OBS: obs, ACTION: action, TASK: np.array([remap[t] for t in task_index], np.int64)}
    attrs = {"source": "lerobot", "lerobot_root": str(root), "codebase_version": info["codebase_version"],
             "fps": info.get("fps"), "robot_type": info.get("robot_type"), "state_features": chosen,
             "action_feature": action_feature, "tasks": [tasks[t] for t in task_ids]}
    tag = info.get("lwd")
    if isinstance(tag, dict) and isinstance(tag.get("suite"), str) and tag["suite"]:
        attrs["suite"] = tag["suite"]  # written by `lwd export-data lerobot`
    return Episodes(data, np.cumsum(ep_length), attrs=attrs)


# ------------------------------------------------------------------------------ export
def _stats(values: np.ndarray) -> dict[str, list]:
    values = np.asarray(values, np.float64)
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "count": [len(values)]}


def save_lerobot(episodes: Episodes, root: str | os.PathLike[str], fps: int = 10, robot_type: str | None = None,
                 state_feature: str = "observation.state",
                 state_features: Sequence[tuple[str, int]] | None = None) -> Path:
    """Write `episodes` as a state-only LeRobot v3.0 dataset at `root` (written beside it, then moved in).

    The observation is one feature, `state_feature`, unless `state_features` splits its columns, in
    order, into several (name, width): e.g. LeRobot's PushT layout, (("observation.state", 2),
    ("observation.environment_state", 16)); `load_lerobot` concatenates them back in that order."""
    pq = _pq()
    import pyarrow as pa

    require("pandas", "lerobot")
    import pandas as pd

    root = Path(root)
    if root.exists():
        raise DatasetError(f"{root} already exists; LeRobot export writes a new folder (choose another --out)")
    episodes.validate()
    obs = np.asarray(episodes.data[OBS], np.float32)
    action = np.asarray(episodes.data[ACTION], np.float32)
    split = list(state_features) if state_features else [(state_feature, obs.shape[1])]
    if sum(width for _, width in split) != obs.shape[1] or min(width for _, width in split) < 1:
        raise DatasetError(f"state_features {split} must split the {obs.shape[1]} observation columns into positive widths")
    if len({name for name, _ in split}) != len(split) or "action" in {name for name, _ in split}:
        raise DatasetError(f"state_features {[name for name, _ in split]} must be distinct names other than 'action'")
    edges = np.cumsum([0, *(width for _, width in split)])
    states = {name: obs[:, lo:hi] for (name, _), lo, hi in zip(split, edges[:-1], edges[1:])}
    names = [str(t) for t in episodes.attrs.get("tasks", [])] or ["task0"]
    task = np.asarray(episodes.data[TASK], np.int64) if TASK in episodes.data else np.zeros(len(obs), np.int64)
    if task.max() >= len(names):
        raise DatasetError(f"task ids go up to {int(task.max())} but the dataset names {len(names)} tasks")
    ends = np.asarray(episodes.episode_ends, np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    lengths = ends - starts
    episode_index = np.repeat(np.arange(len(ends)), lengths)
    frame_index = np.arange(len(obs)) - np.repeat(starts, lengths)

    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        (tmp / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
        (tmp / "data" / "chunk-000").mkdir(parents=True)

        def vectors(values: np.ndarray) -> Any:
            return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])

        frames = pa.table({**{name: vectors(values) for name, values in states.items()}, "action": vectors(action),
                           "timestamp": pa.array((frame_index / fps).astype(np.float32)),
                           "frame_index": pa.array(frame_index), "episode_index": pa.array(episode_index),
                           "index": pa.array(np.arange(len(obs), dtype=np.int64)), "task_index": pa.array(task)})
        pq.write_table(frames, tmp / "data" / "chunk-000" / "file-000.parquet")

        # LeRobot keeps the task string as the pandas index of tasks.parquet, task_index as the column.
        pd.DataFrame({"task_index": np.arange(len(names), dtype=np.int64)}, index=names).to_parquet(tmp / "meta" / "tasks.parquet")

        rows: dict[str, list] = {"episode_index": [], "tasks": [], "length": [], "data/chunk_index": [], "data/file_index": [],
                                 "dataset_from_index": [], "dataset_to_index": []}
        for key in (*states, "action"):
            for stat in ("min", "max", "mean", "std", "count"):
                rows[f"stats/{key}/{stat}"] = []
        for e, (start, end) in enumerate(zip(starts, ends)):
            rows["episode_index"].append(e)
            rows["tasks"].append(sorted({names[t] for t in task[start:end]}))
            rows["length"].append(int(end - start))
            rows["data/chunk_index"].append(0)
            rows["data/file_index"].append(0)
            rows["dataset_from_index"].append(int(start))
            rows["dataset_to_index"].append(int(end))
            for key, values in (*states.items(), ("action", action)):
                for stat, value in _stats(values[start:end]).items():
                    rows[f"stats/{key}/{stat}"].append(value)
        rows["meta/episodes/chunk_index"] = [0] * len(ends)
        rows["meta/episodes/file_index"] = [0] * len(ends)
        pq.write_table(pa.Table.from_pydict(rows), tmp / "meta" / "episodes" / "chunk-000" / "file-000.parquet")

        def feature(name: str, width: int) -> dict[str, Any]:
            """A float vector feature, each dimension named (LeRobot lists per-dimension names)."""
            short = name.rsplit(".", 1)[-1]
            return {"dtype": "float32", "shape": [width], "names": [f"{short}_{i}" for i in range(width)]}

        scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}  # noqa: E731
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(ends),
            "total_frames": len(obs), "total_tasks": len(names), "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": int(fps), "splits": {"train": f"0:{len(ends)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
            "features": {**{name: feature(name, values.shape[1]) for name, values in states.items()},
                         "action": feature("action", action.shape[1]),
                         "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
                         "index": scalar("int64"), "task_index": scalar("int64")},
            # lwd's own tag (LeRobot ignores keys it does not know): the benchmark suite the data
            # came from, so `lwd import lerobot` gives a dataset that trains and evaluates as the original.
            **({"lwd": {"suite": str(episodes.attrs["suite"])}} if episodes.attrs.get("suite") else {}),
        }
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4, ensure_ascii=False))
        stats = {key: _stats(values) for key, values in (*states.items(), ("action", action))}
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
