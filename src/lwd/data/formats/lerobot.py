"""LeRobot datasets (codebase v3.0) <-> our episode store, with pyarrow and without the lerobot package.

The v3.0 layout, as LeRobot 0.4's own writer makes it:

    meta/info.json                             codebase_version, fps, features {name: {dtype, shape, names}}, ...
    meta/tasks.parquet                         one row per task: task_index, the task string as the (pandas) index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: episode_index, tasks, length,
                                               dataset_from_index / dataset_to_index, data/chunk_index, ...
    data/chunk-000/file-000.parquet            one row per frame: the features (vectors as fixed-size
                                               lists), timestamp, frame_index, episode_index, index, task_index

Camera frames (features of dtype "image" or "video", shape [H, W, 3]):

    image   a parquet column of the data files, one struct {bytes: PNG, path} per frame
            (Hugging Face datasets' Image feature, as LeRobot embeds images)
    video   videos/<feature>/chunk-XXX/file-XXX.mp4 (info.json's video_path), several episodes one after
            another in a file; meta/episodes gives each episode's videos/<feature>/chunk_index,
            file_index, from_timestamp and to_timestamp, its frame k at from_timestamp + k / fps

Import: the observation is the concatenation of the chosen state features (by default
`observation.state`, plus `observation.environment_state` where present), the action is `action`;
each distinct task string becomes a task id (kept in the store's `tasks`), so task-conditioned
training works on multi-task datasets. Visual features become camera frames (`Episodes.frames`,
uint8 (H, W, 3)), all of them unless `image_features` chooses: images decoded exactly (PNG),
videos decoded with imageio's ffmpeg (the `video` extra; LeRobot's default AV1 and H.264 both
decode), so within the codec's loss. Image keys follow lwd's naming (`lwd.data.frames`):
`observation.image` is `image`, `observation.images.<camera>` is `<camera>`.

Export writes our demos in the same layout, camera frames as videos (H.264 mp4, LeRobot's default
storage; `frames="image"`: PNG in the parquet files, exact) under the feature names above.
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
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
"""info.json's video_path as LeRobot 0.4 writes it."""
FRAME_STORAGE = ("video", "image")
"""How `save_lerobot` stores camera frames: LeRobot's video features (mp4), or image features (PNG in parquet)."""


def lerobot_feature(image_key: str) -> str:
    """The LeRobot feature of an image key: `image` -> `observation.image`, else `observation.images.<key>`."""
    return "observation.image" if image_key == "image" else f"observation.images.{image_key}"


def image_key_of(feature: str) -> str:
    """The image key of a LeRobot visual feature (inverse of `lerobot_feature`; other names: their last part)."""
    if feature == "observation.image":
        return "image"
    if feature.startswith("observation.images."):
        return feature[len("observation.images."):]
    return feature.rsplit(".", 1)[-1]


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


def _choose_visual(info: dict[str, Any], image_features: Sequence[str] | None) -> list[str]:
    """The visual features to import: all (None), or the ones named (an empty list: none)."""
    features = info["features"]
    visual = [k for k, v in features.items() if v.get("dtype") in _VISUAL]
    if image_features is None:
        chosen = visual
    else:
        unknown = [n for n in image_features if n not in visual]
        if unknown:
            raise DatasetError(f"--image-features: {unknown} {'is' if len(unknown) == 1 else 'are'} not image or video "
                               f"features; the dataset has {visual or 'none'}")
        chosen = list(dict.fromkeys(image_features))
    keys = [image_key_of(n) for n in chosen]
    if len(set(keys)) != len(keys):
        raise DatasetError(f"image features {chosen} map to repeated image keys {keys}; choose them with --image-features")
    for name in chosen:
        shape = features[name].get("shape", [])
        if len(shape) != 3 or 3 not in (shape[-1], shape[0]):
            raise DatasetError(f"feature {name!r} has shape {shape}; lwd reads RGB frames [H, W, 3]")
    return chosen


def _frame_shape(feature: dict[str, Any]) -> tuple[int, int, int]:
    """(H, W, 3) of a visual feature (LeRobot records [H, W, C], with names height, width, channels)."""
    shape = [int(n) for n in feature["shape"]]
    names = feature.get("names")
    if isinstance(names, list) and names[:1] == ["channels"] or (shape[0] == 3 and shape[-1] != 3):
        shape = [shape[1], shape[2], shape[0]]
    return shape[0], shape[1], 3


def _decode_images(table: Any, name: str, shape: tuple[int, int, int]) -> np.ndarray:
    """An image column (structs of PNG/JPEG bytes, or paths) -> (N, H, W, 3) uint8."""
    import io

    Image = require("PIL.Image", "video", "Pillow")
    out = np.empty((table.num_rows, *shape), np.uint8)
    for i, cell in enumerate(table.column(name).to_pylist()):
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise DatasetError(f"feature {name!r}: frame {i} holds no image bytes (images must be embedded in the parquet files)")
        frame = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        if frame.shape != shape:
            raise DatasetError(f"feature {name!r}: frame {i} is {frame.shape}, but info.json gives {list(shape)}")
        out[i] = frame
    return out


def _decode_videos(root: Path, info: dict[str, Any], name: str, shape: tuple[int, int, int], episodes: Any,
                   starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A video feature's frames of every episode, (N, H, W, 3) uint8, episode e at rows [starts[e], starts[e] + lengths[e]).

    Each mp4 file is decoded once, front to back, and its frames handed to the episodes that lie in it."""
    require("imageio_ffmpeg", "video")
    import imageio.v2 as imageio

    columns = [f"videos/{name}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
    template = info.get("video_path") or VIDEO_PATH
    fps = float((info["features"][name].get("info") or {}).get("video.fps") or info.get("fps") or 0)
    if fps <= 0:
        raise DatasetError(f"{root}: info.json gives no fps for the video feature {name!r}")
    chunk, file, begin = (episodes.column(c).to_numpy() for c in columns)
    out = np.empty((int(lengths.sum()), *shape), np.uint8)
    by_file: dict[tuple[int, int], list[int]] = {}
    for e in range(len(lengths)):
        by_file.setdefault((int(chunk[e]), int(file[e])), []).append(e)
    for (c, f), members in by_file.items():
        path = root / template.format(video_key=name, chunk_index=c, file_index=f)
        if not path.is_file():
            raise DatasetError(f"{path} is missing (video of {name!r}, episodes {members})")
        wanted = {}  # frame number in the file -> row of the output
        for e in members:
            first = int(round(float(begin[e]) * fps))
            wanted.update({first + k: int(starts[e]) + k for k in range(int(lengths[e]))})
        reader = imageio.get_reader(path, "ffmpeg")
        found = 0
        try:
            for number, frame in enumerate(reader):
                if number in wanted:
                    if frame.shape != shape:
                        raise DatasetError(f"{path}: frames are {frame.shape}, but info.json gives {list(shape)} for {name!r}")
                    out[wanted[number]] = frame
                    found += 1
                    if found == len(wanted):
                        break
        finally:
            reader.close()
        if found != len(wanted):
            raise DatasetError(f"{path} holds fewer frames than meta/episodes places in it ({found} of {len(wanted)} "
                               f"found for episodes {members})")
    return out


def load_lerobot(root: str | os.PathLike[str], state_features: Sequence[str] | None = None,
                 action_feature: str = "action", image_features: Sequence[str] | None = None) -> Episodes:
    """Read a local LeRobot v3.0 dataset into `Episodes` (obs = the state features, concatenated; the
    visual features, all or `image_features`, as camera frames)."""
    _pq()  # refused with an install hint when pyarrow is missing
    root = Path(root)
    info = _read_info(root)
    chosen = _choose_state(info, state_features, action_feature)
    visual = _choose_visual(info, image_features)
    videos = [n for n in visual if info["features"][n]["dtype"] == "video"]
    tasks = _task_strings(root)
    meta = [_read_columns(f, ["episode_index", "length"]) for f in _files(root, "meta/episodes")]
    ep_index = np.concatenate([t.column("episode_index").to_numpy() for t in meta]).astype(np.int64)
    ep_length = np.concatenate([t.column("length").to_numpy() for t in meta]).astype(np.int64)
    order = np.argsort(ep_index)
    ep_index, ep_length = ep_index[order], ep_length[order]
    import pyarrow as pa

    images = [n for n in visual if n not in videos]
    columns = [*chosen, action_feature, "episode_index", "index", "task_index", *images,
               *(["frame_index"] if videos else [])]
    tables = [_read_columns(f, columns) for f in _files(root, "data")]
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
    if visual:
        attrs["image_features"] = {image_key_of(n): n for n in visual}
    tag = info.get("lwd")
    if isinstance(tag, dict) and isinstance(tag.get("suite"), str) and tag["suite"]:
        attrs["suite"] = tag["suite"]  # written by `lwd export-data lerobot`
    frames: dict[str, np.ndarray] = {}
    starts = np.concatenate([[0], np.cumsum(ep_length)[:-1]]).astype(np.int64)
    if videos:  # a row's frame in its episode's video: frame_index must count 0, 1, ... in each episode
        frame_index = table.column("frame_index").to_numpy().astype(np.int64)
        expected = np.arange(len(frame_index)) - np.repeat(starts, ep_length)
        if not np.array_equal(frame_index, expected):
            raise DatasetError(f"{root}: frame_index does not count 0, 1, ... within each episode; frames cannot be "
                               "matched to the video")
    if videos:  # where each episode's frames are: its video file and first timestamp, per camera
        video_columns = ["episode_index", *[f"videos/{n}/{c}" for n in videos for c in ("chunk_index", "file_index", "from_timestamp")]]
        located = pa.concat_tables([_read_columns(f, video_columns) for f in _files(root, "meta/episodes")])
        located = located.take(pa.array(np.argsort(located.column("episode_index").to_numpy())))
    for name in visual:
        shape = _frame_shape(info["features"][name])
        frames[image_key_of(name)] = (_decode_videos(root, info, name, shape, located, starts, ep_length) if name in videos
                                      else _decode_images(table, name, shape))
    return Episodes(data, np.cumsum(ep_length), attrs=attrs, frames=frames)


# ------------------------------------------------------------------------------ export
def _stats(values: np.ndarray) -> dict[str, list]:
    values = np.asarray(values, np.float64)
    return {"min": values.min(0).tolist(), "max": values.max(0).tolist(), "mean": values.mean(0).tolist(),
            "std": values.std(0).tolist(), "count": [len(values)]}


def _image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel statistics of uint8 frames (N, H, W, 3) in [0, 1], shaped (3, 1, 1) as LeRobot keeps them."""
    values = frames.reshape(-1, 3).astype(np.float64) / 255.0
    shaped = lambda v: [[[float(c)]] for c in v]  # noqa: E731
    return {"min": shaped(values.min(0)), "max": shaped(values.max(0)), "mean": shaped(values.mean(0)),
            "std": shaped(values.std(0)), "count": [len(frames)]}


def _pooled_image_stats(parts: list[dict[str, list]]) -> dict[str, list]:
    """The statistics of all frames from those of each episode (counts, means and variances pooled)."""
    counts = np.array([p["count"][0] for p in parts], np.float64)
    mean = np.array([np.ravel(p["mean"]) for p in parts])  # (E, 3)
    var = np.array([np.ravel(p["std"]) for p in parts]) ** 2
    total = (counts[:, None] * mean).sum(0) / counts.sum()
    pooled = (counts[:, None] * (var + (mean - total) ** 2)).sum(0) / counts.sum()
    shaped = lambda v: [[[float(c)]] for c in v]  # noqa: E731
    return {"min": shaped(np.min([np.ravel(p["min"]) for p in parts], 0)), "max": shaped(np.max([np.ravel(p["max"]) for p in parts], 0)),
            "mean": shaped(total), "std": shaped(np.sqrt(pooled)), "count": [int(counts.sum())]}


def _png(frame: np.ndarray) -> bytes:
    import io

    Image = require("PIL.Image", "video", "Pillow")
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def _visual_feature(storage: str, shape: tuple[int, ...], fps: int) -> dict[str, Any]:
    feature: dict[str, Any] = {"dtype": storage, "shape": list(shape), "names": ["height", "width", "channels"]}
    if storage == "video":
        feature["info"] = {"video.height": shape[0], "video.width": shape[1], "video.codec": "h264", "video.pix_fmt": "yuv420p",
                           "video.is_depth_map": False, "video.fps": int(fps), "video.channels": 3, "has_audio": False}
    return feature


def save_lerobot(episodes: Episodes, root: str | os.PathLike[str], fps: int = 10, robot_type: str | None = None,
                 state_feature: str = "observation.state",
                 state_features: Sequence[tuple[str, int]] | None = None, frames: str = "video") -> Path:
    """Write `episodes` as a LeRobot v3.0 dataset at `root` (written beside it, then moved in).

    The observation is one feature, `state_feature`, unless `state_features` splits its columns, in
    order, into several (name, width): e.g. LeRobot's PushT layout, (("observation.state", 2),
    ("observation.environment_state", 16)); `load_lerobot` concatenates them back in that order.
    Camera frames become visual features named by `lerobot_feature`, stored as `frames` says: "video"
    (one H.264 mp4 per camera, episodes one after another, written episode by episode; the `video`
    extra) or "image" (PNG in the data file: exact, larger)."""
    if frames not in FRAME_STORAGE:
        raise DatasetError(f"frames must be one of {FRAME_STORAGE} (how LeRobot stores camera frames), got {frames!r}")
    if frames == "video" and episodes.frames:
        require("imageio_ffmpeg", "video")
        odd = {k: s for k, s in episodes.frame_shapes().items() if s[0] % 2 or s[1] % 2}
        if odd:
            raise DatasetError(f"frames {odd} have an odd side, which H.264 (yuv420p) cannot hold; export them with frames='image'")
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

        visual = {lerobot_feature(key): key for key in episodes.image_keys}
        image_stats: dict[str, list[dict[str, list]]] = {name: [] for name in visual}
        image_columns: dict[str, list[bytes]] = {name: [] for name in visual} if frames == "image" else {}
        writers: dict[str, Any] = {}
        try:
            for name, key in visual.items():
                if frames == "video":
                    import imageio.v2 as imageio

                    path = tmp / VIDEO_PATH.format(video_key=name, chunk_index=0, file_index=0)
                    path.parent.mkdir(parents=True)
                    # H.264 near-lossless (crf 18), a key frame every 2 frames as LeRobot encodes (g=2)
                    writers[name] = imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p",
                                                       ffmpeg_params=["-crf", "18", "-g", "2"])
            for start, end in zip(starts, ends):  # episode by episode: never every frame in memory
                for name, key in visual.items():
                    block = episodes.frames[key][int(start):int(end)]  # (T, H, W, 3) uint8
                    image_stats[name].append(_image_stats(block))
                    if frames == "video":
                        for frame in block:
                            writers[name].append_data(frame)
                    else:
                        image_columns[name] += [_png(frame) for frame in block]
        finally:
            for writer in writers.values():
                writer.close()
        image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # Hugging Face datasets' Image
        images = {name: pa.array([{"bytes": b, "path": None} for b in column], type=image_type)
                  for name, column in image_columns.items()}
        table = pa.table({**{name: vectors(values) for name, values in states.items()}, "action": vectors(action), **images,
                          "timestamp": pa.array((frame_index / fps).astype(np.float32)),
                          "frame_index": pa.array(frame_index), "episode_index": pa.array(episode_index),
                          "index": pa.array(np.arange(len(obs), dtype=np.int64)), "task_index": pa.array(task)})
        pq.write_table(table, tmp / "data" / "chunk-000" / "file-000.parquet")

        # LeRobot keeps the task string as the pandas index of tasks.parquet, task_index as the column.
        pd.DataFrame({"task_index": np.arange(len(names), dtype=np.int64)}, index=names).to_parquet(tmp / "meta" / "tasks.parquet")

        rows: dict[str, list] = {"episode_index": [], "tasks": [], "length": [], "data/chunk_index": [], "data/file_index": [],
                                 "dataset_from_index": [], "dataset_to_index": []}
        for key in (*states, "action", *visual):
            for stat in ("min", "max", "mean", "std", "count"):
                rows[f"stats/{key}/{stat}"] = []
        if frames == "video":
            for name in visual:
                for column in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                    rows[f"videos/{name}/{column}"] = []
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
            for name in visual:
                for stat, value in image_stats[name][e].items():
                    rows[f"stats/{name}/{stat}"].append(value)
                if frames == "video":  # the episodes follow one another in the one file of each camera
                    rows[f"videos/{name}/chunk_index"].append(0)
                    rows[f"videos/{name}/file_index"].append(0)
                    rows[f"videos/{name}/from_timestamp"].append(float(start) / fps)
                    rows[f"videos/{name}/to_timestamp"].append(float(end) / fps)
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
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": VIDEO_PATH if frames == "video" and visual else None,
            "features": {**{name: feature(name, values.shape[1]) for name, values in states.items()},
                         "action": feature("action", action.shape[1]),
                         **{name: _visual_feature(frames, episodes.frames[key].frame_shape, fps) for name, key in visual.items()},
                         "timestamp": scalar("float32"), "frame_index": scalar("int64"), "episode_index": scalar("int64"),
                         "index": scalar("int64"), "task_index": scalar("int64")},
            # lwd's own tag (LeRobot ignores keys it does not know): the benchmark suite the data
            # came from, so `lwd import lerobot` gives a dataset that trains and evaluates as the original.
            **({"lwd": {"suite": str(episodes.attrs["suite"])}} if episodes.attrs.get("suite") else {}),
        }
        (tmp / "meta" / "info.json").write_text(json.dumps(info, indent=4, ensure_ascii=False))
        stats = {key: _stats(values) for key, values in (*states.items(), ("action", action))}
        stats.update({name: _pooled_image_stats(parts) for name, parts in image_stats.items()})
        (tmp / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
