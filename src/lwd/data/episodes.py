"""The episode store: every episode of a dataset, concatenated along time.

Why this layout (Diffusion Policy's "replay buffer"): one contiguous array per key plus the
cumulative episode ends makes every later step a cheap slice or a vectorised gather, and it maps
one-to-one onto a zarr group (``data/<key>`` + ``meta/episode_ends``), so files written here open
in Diffusion Policy's tools and theirs open here.

::

    data["obs"]     |e0 e0 e0 e0|e1 e1|e2 e2 e2|      (N, Do), N = total steps
    episode_ends                 4     6        9      (E,) exclusive ends
    episode_starts  0            4     6               (E,)
    frames["image"] |f  f  f  f |f  f |f  f  f |      (N, H, W, 3) uint8, optional, read on demand

Camera frames (image observations) live beside ``data`` in ``frames``: key -> :class:`Frames`,
one frame per step, stored as ``data/<key>`` with one frame per chunk and listed in the root
attribute ``image_keys`` (naming and layout: ``lwd.data.frames``). Loading a store reads no
frame; windows and batches read the frames they use.

Everything that builds an ``Episodes`` goes through :meth:`Episodes.validate`, so downstream code
(windows, normaliser, trainers) may assume clean data and need no defensive checks of its own.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

from lwd.data.errors import DatasetError
from lwd.data.frames import BLOCK_FRAMES, FRAME_CHUNK, IMAGE_KEYS_ATTR, Frames, as_frames
from lwd.data.keys import ACTION, OBS, TASK
from lwd.outputs import remove_path, replace_path

#: Version of the on-disk layout written by :meth:`Episodes.save` (root attribute ``lwd_format``).
FORMAT_VERSION = 1
#: Steps per zarr chunk. Large enough for fast sequential reads, small enough to load partially.
CHUNK_STEPS = 10_000
#: dtype kinds we accept: bool, signed int, unsigned int, float. Strings, objects and complex
#: numbers cannot be fed to a network, so they are rejected early with a clear message.
_NUMERIC_KINDS = "biuf"
#: Keys stored as float64 rather than float32 (simulator states that must replay exactly).
FLOAT64_KEYS = frozenset({"sim_state"})
_MAX_LISTED = 5  # how many offending episodes an error message lists before "..."


@dataclass(eq=False)  # arrays have no single truth value; compare fields explicitly
class Episodes:
    """All episodes of a dataset, concatenated along time (Diffusion Policy's replay-buffer layout).

    Attributes:
        data: key -> array of shape (N, ...) for N total steps. Native keys: ``"obs"`` (N, Do)
            float32, ``"action"`` (N, Da) float32, optional ``"task"`` (N,) int64. Other numeric
            keys are carried along untouched (float arrays are stored as float32).
        episode_ends: (E,) int64 cumulative exclusive end index of each episode.
        attrs: JSON-serialisable metadata (env name, task names, source, ...).
        frames: image key -> :class:`Frames` (N, H, W, 3) uint8, one camera frame per step
            (optional; an array of frames is accepted and wrapped). Kept apart from ``data`` so
            that nothing that loads whole arrays ever loads them.

    The constructor coerces arrays (float -> float32, integer task -> int64) and validates;
    an invalid dataset raises :class:`DatasetError` here rather than later in training.
    """

    data: dict[str, np.ndarray]
    episode_ends: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, Frames] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = {key: _coerce(key, value) for key, value in dict(self.data).items()}
        self.episode_ends = np.asarray(self.episode_ends)
        self.attrs = dict(self.attrs) if self.attrs is not None else {}
        self.attrs.pop(IMAGE_KEYS_ATTR, None)  # derived from `frames`; save() writes it
        self.frames = {key: as_frames(key, value) for key, value in dict(self.frames or {}).items()}
        self.validate()
        # Only after validation: the dtype check must see what the caller passed.
        self.episode_ends = self.episode_ends.astype(np.int64, copy=False)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_list(
        cls,
        episodes: Sequence[Mapping[str, np.ndarray]],
        attrs: Mapping[str, Any] | None = None,
        image_keys: Sequence[str] = (),
    ) -> Episodes:
        """Build from one dict per episode, each mapping key -> (T_i, ...) array.

        A scalar ``"task"`` is broadcast to (T_i,), since a scripted expert runs one task per
        episode and should not have to repeat the id at every step. The keys in `image_keys`
        hold (T_i, H, W, 3) uint8 frames and go to ``frames``.
        """
        if len(episodes) == 0:
            raise DatasetError("cannot build Episodes from an empty list: pass at least one episode")
        keys = list(episodes[0].keys())
        lengths: list[int] = []
        for i, episode in enumerate(episodes):
            if set(episode.keys()) != set(keys):
                raise DatasetError(
                    f"episode {i} has keys {sorted(episode.keys())} but episode 0 has {sorted(keys)}; "
                    "every episode must have the same keys"
                )
            sized = {k: np.asarray(v) for k, v in episode.items() if np.ndim(v) > 0}
            if not sized:
                raise DatasetError(f"episode {i} has no per-step arrays (all values are scalars)")
            length = len(next(iter(sized.values())))
            for key, value in sized.items():
                if len(value) != length:
                    raise DatasetError(
                        f"episode {i}: '{key}' has {len(value)} steps but "
                        f"'{next(iter(sized))}' has {length}; all keys of an episode need the same length"
                    )
            lengths.append(length)

        data: dict[str, np.ndarray] = {}
        for key in keys:
            parts = []
            for episode, length in zip(episodes, lengths):
                value = np.asarray(episode[key])
                if value.ndim == 0:  # scalar per episode, e.g. the task id
                    value = np.full(length, value, dtype=value.dtype)
                parts.append(value)
            data[key] = np.concatenate(parts, axis=0)
        missing = [key for key in image_keys if key not in data]
        if missing:
            raise DatasetError(f"image keys {missing} are not keys of the episodes; they have {sorted(keys)}")
        frames = {key: data.pop(key) for key in image_keys}
        return cls(data=data, episode_ends=np.cumsum(lengths, dtype=np.int64), attrs=dict(attrs or {}), frames=frames)

    @classmethod
    def empty_like(cls, template: Episodes) -> Episodes:
        """An ``Episodes`` with zero episodes and the same keys, trailing shapes and attrs.

        The only legitimately empty dataset is a validation split with ``val_fraction=0``;
        everywhere else an empty dataset is an error, so this deliberately skips ``validate``.
        """
        empty = cls.__new__(cls)
        empty.data = {key: value[:0] for key, value in template.data.items()}
        empty.episode_ends = np.zeros(0, dtype=np.int64)
        empty.attrs = dict(template.attrs)
        empty.frames = {key: value.take(np.zeros(0, np.int64)) for key, value in template.frames.items()}
        return empty

    # ------------------------------------------------------------------ shape information

    @property
    def num_episodes(self) -> int:
        return int(len(self.episode_ends))

    @property
    def num_steps(self) -> int:
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    @property
    def lengths(self) -> np.ndarray:
        """(E,) int64 number of steps of each episode."""
        return np.diff(self.episode_ends, prepend=0).astype(np.int64)

    @property
    def episode_starts(self) -> np.ndarray:
        """(E,) int64 inclusive start index of each episode."""
        return (self.episode_ends - self.lengths).astype(np.int64)

    @property
    def keys(self) -> list[str]:
        return list(self.data.keys())

    @property
    def image_keys(self) -> list[str]:
        """Keys of the camera frames (empty for state-only data)."""
        return list(self.frames)

    def frame_shapes(self) -> dict[str, tuple[int, int, int]]:
        """image key -> (H, W, 3) of its frames."""
        return {key: value.frame_shape for key, value in self.frames.items()}

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """Arrays of one episode, as views into ``data`` (no copy; do not modify in place)."""
        if not -self.num_episodes <= index < self.num_episodes:
            raise IndexError(f"episode index {index} out of range for {self.num_episodes} episodes")
        index %= self.num_episodes
        start, end = int(self.episode_starts[index]), int(self.episode_ends[index])
        return {key: value[start:end] for key, value in self.data.items()}

    def __len__(self) -> int:
        """Number of episodes (not steps: use ``num_steps`` for those)."""
        return self.num_episodes

    # ------------------------------------------------------------------ validation

    def validate(self, required: Sequence[str] = (OBS, ACTION)) -> None:
        """Raise :class:`DatasetError` naming the first problem found, or return None.

        Checks, in order: non-empty; ``required`` keys present; numeric dtypes; episode_ends
        integer, 1-D, positive and strictly increasing (a repeated end is reported as an empty
        episode); every key has ``episode_ends[-1]`` steps; obs/action 2-D; task a non-negative
        integer vector; no NaN/inf in float arrays (reported by episode and step); image keys
        (uint8 (N, H, W, 3), checked by ``Frames``) one frame per step and named apart from ``data``.
        """
        _check_keys(self.data, required)
        _check_episode_ends(self.episode_ends)
        _check_shapes(self.data, int(self.episode_ends[-1]))
        _check_frames(self.frames, self.data, int(self.episode_ends[-1]))
        _check_finite(self.data, self.episode_ends)

    def check_min_length(self, min_length: int, what: str) -> None:
        """Raise if any episode has fewer than ``min_length`` steps.

        ``what`` names the requirement for the message, e.g. ``"the action horizon H=8"``.
        """
        short = np.flatnonzero(self.lengths < min_length)
        if len(short) == 0:
            return
        listed = ", ".join(f"episode {int(i)} has {int(self.lengths[i])} steps" for i in short[:_MAX_LISTED])
        more = f" (and {len(short) - _MAX_LISTED} more)" if len(short) > _MAX_LISTED else ""
        raise DatasetError(
            f"{len(short)} of {self.num_episodes} episodes are too short: {listed}{more}, but {what} "
            f"needs at least {min_length}; pass a shorter horizon or drop short episodes with "
            f"episodes.drop_shorter_than({min_length})"
        )

    # ------------------------------------------------------------------ subsets

    def select(self, indices: Sequence[int] | np.ndarray) -> Episodes:
        """A new ``Episodes`` holding the given episodes, in the given order (arrays are copied).

        ``indices`` may also be a boolean mask over episodes. An empty selection gives an empty
        ``Episodes`` (see :meth:`empty_like`).
        """
        indices = np.asarray(indices)
        if indices.dtype == bool:
            if len(indices) != self.num_episodes:
                raise DatasetError(
                    f"boolean mask has {len(indices)} entries but there are {self.num_episodes} episodes"
                )
            indices = np.flatnonzero(indices)
        if indices.size == 0:
            return Episodes.empty_like(self)
        if indices.dtype.kind not in "iu" or indices.ndim != 1:
            raise DatasetError(
                f"episode indices must be a 1-D integer array, got dtype {indices.dtype}, shape {indices.shape}"
            )
        if indices.min() < 0 or indices.max() >= self.num_episodes:
            raise DatasetError(f"episode indices must be in [0, {self.num_episodes}), got {indices.tolist()}")
        starts, ends = self.episode_starts[indices], self.episode_ends[indices]
        steps = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
        return Episodes(
            data={key: value[steps] for key, value in self.data.items()},
            episode_ends=np.cumsum(ends - starts),
            attrs=dict(self.attrs),
            frames={key: value.take(steps) for key, value in self.frames.items()},  # views: no frame is read
        )

    def episode_tasks(self) -> np.ndarray | None:
        """(E,) int64 task id of each episode (its first step's), or None without a task key."""
        if TASK not in self.data or self.num_episodes == 0:
            return None
        return self.data[TASK][self.episode_starts].astype(np.int64)

    def split(self, val_fraction: float, seed: int) -> tuple[Episodes, Episodes]:
        """Split by whole episodes into (train, val), deterministically for a given seed.

        Episodes never straddle the split, so no window of a validation episode was seen in
        training. With a ``"task"`` key the split is stratified: each task (the task of an
        episode's first step) sends ``round(n * val_fraction)`` of its ``n`` episodes to val, at
        least one when ``val_fraction > 0`` and at most ``n - 1``, so every task keeps at least one
        training episode. Both halves keep the original episode order. ``val_fraction=0`` gives an
        empty val set.
        """
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
        rng = np.random.default_rng(seed)
        tasks = self.episode_tasks()
        groups = [np.arange(self.num_episodes)] if tasks is None else [
            np.flatnonzero(tasks == task) for task in np.unique(tasks)
        ]
        val: list[np.ndarray] = []
        for group in groups:
            n = len(group)
            n_val = int(np.floor(n * val_fraction + 0.5))
            if val_fraction > 0:
                n_val = max(n_val, 1)
            n_val = min(n_val, n - 1)
            val.append(rng.permutation(group)[:n_val])
        val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
        train_idx = np.setdiff1d(np.arange(self.num_episodes), val_idx)
        return self.select(train_idx), self.select(val_idx)

    def drop_shorter_than(self, min_length: int) -> Episodes:
        """A new ``Episodes`` without the episodes that have fewer than ``min_length`` steps."""
        keep = self.lengths >= min_length
        if not keep.any():
            raise DatasetError(
                f"all {self.num_episodes} episodes are shorter than {min_length} steps "
                f"(longest has {int(self.lengths.max())}); use a shorter horizon"
            )
        return self.select(np.flatnonzero(keep))

    # ------------------------------------------------------------------ disk

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a zarr (format 2) store in Diffusion Policy's replay-buffer layout; return the path.

        Layout: ``data/<key>`` arrays chunked along time, ``meta/episode_ends``, root attributes =
        ``attrs`` plus ``"lwd_format": 1``. Frames go to ``data/<image key>``, one frame per chunk,
        copied block by block (never all in memory), and the root attribute ``image_keys`` lists them. A path ending in ``.zarr.zip`` (or ``.zip``) is written
        as one zip file, anything else as a directory. The write goes to a temporary sibling first
        and is renamed into place, so an interrupted save never leaves a half-written dataset at
        ``path`` and an existing dataset there is only replaced once the new one is complete.
        """
        self.validate()
        _refuse_own_frame_store(self.frames, Path(path))
        extra = {IMAGE_KEYS_ATTR: list(self.frames)} if self.frames else {}
        try:
            root_attrs = json.loads(json.dumps({**self.attrs, **extra, "lwd_format": FORMAT_VERSION}))
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"attrs must be JSON-serialisable to be saved: {exc}") from exc

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            # mode "w-" and attributes at creation: a zip store cannot overwrite a member, so every
            # file must be written exactly once (no later attrs update, no re-created groups).
            if _is_zip_path(path):
                store = zarr.storage.ZipStore(tmp, mode="w")
                try:
                    root = zarr.open_group(store=store, mode="w-", zarr_format=2, attributes=root_attrs)
                    self._write_arrays(root)
                finally:
                    store.close()
            else:
                root = zarr.open_group(str(tmp), mode="w-", zarr_format=2, attributes=root_attrs)
                self._write_arrays(root)
            replace_path(tmp, path)
        except BaseException:
            remove_path(tmp, settle=1.0)  # zarr's in-flight chunk writes can land after the first error
            raise
        return path

    def _write_arrays(self, root: Any) -> None:
        # Diffusion Policy's own compressor settings, so their loaders read our files unchanged.
        compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
        data_group = root.create_group("data")
        for key, value in self.data.items():
            chunks = (min(CHUNK_STEPS, len(value)),) + value.shape[1:]
            data_group.create_array(key, data=value, chunks=chunks, compressors=compressor)
        for key, frames in self.frames.items():
            stored = data_group.create_array(key, shape=frames.shape, dtype=np.uint8, chunks=(FRAME_CHUNK, *frames.frame_shape),
                                             compressors=compressor)
            for start in range(0, len(frames), BLOCK_FRAMES):  # whole chunks, each written once (zip members cannot be rewritten)
                stored[start : start + BLOCK_FRAMES] = frames[start : start + BLOCK_FRAMES]
        root.create_group("meta").create_array(
            "episode_ends", data=self.episode_ends, chunks=self.episode_ends.shape, compressors=compressor
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        keys: Sequence[str] | None = None,
        rename: Mapping[str, str] | None = None,
        image_keys: Sequence[str] = (),
    ) -> Episodes:
        """Read a store written by :meth:`save` or by Diffusion Policy (directory or ``.zarr.zip``).

        Args:
            path: directory store, or a ``.zip`` file.
            keys: stored names of the ``data/`` arrays to read (default: all). Reading only what
                is needed matters for DP files, whose image arrays dwarf the low-dim ones.
            rename: stored name -> our name, applied after reading, e.g. ``{"state": "obs"}``.
            image_keys: stored names to open as frames besides those the store's ``image_keys``
                attribute lists (for stores written by others, e.g. DP's ``img``).

        Float arrays come back as float32, an integer ``task`` as int64; the result is validated.
        Frames are not read: ``frames`` holds views that read from the store when indexed (a zip
        store then stays open as long as they live).
        """
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"dataset path {path} does not exist")
        if path.is_file() and not zipfile.is_zipfile(path):
            raise DatasetError(f"{path} is not a zarr store: it is a file but not a zip archive")
        store = zarr.storage.ZipStore(path, mode="r") if path.is_file() else None
        try:
            try:
                root = (
                    zarr.open_group(store=store, mode="r")
                    if store is not None
                    else zarr.open_group(str(path), mode="r")
                )
            except (FileNotFoundError, ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
                raise DatasetError(
                    f"{path} is not a zarr store (expected a directory or .zarr.zip with groups "
                    f"'data' and 'meta'): {exc}"
                ) from exc
            episodes = cls._read_group(root, path, keys, rename, image_keys)
        except BaseException:
            if store is not None:
                store.close()
            raise
        if store is not None and not episodes.frames:
            store.close()  # else the frames read from it later
        return episodes

    @classmethod
    def _read_group(
        cls, root: Any, path: Path, keys: Sequence[str] | None, rename: Mapping[str, str] | None,
        image_keys: Sequence[str] = (),
    ) -> Episodes:
        groups = set(root.group_keys())
        if "meta" not in groups or "episode_ends" not in set(root["meta"].array_keys()):
            raise DatasetError(f"{path} has no 'meta/episode_ends' array; it is not an episode dataset")
        if "data" not in groups:
            raise DatasetError(f"{path} has no 'data' group; it is not an episode dataset")
        attrs = dict(root.attrs)
        version = attrs.pop("lwd_format", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise DatasetError(
                f"{path} was written in lwd_format {version} but this lwd reads up to "
                f"{FORMAT_VERSION}; upgrade lwd"
            )
        data_group = root["data"]
        available = sorted(data_group.array_keys())
        wanted = list(keys) if keys is not None else available
        missing = [key for key in wanted if key not in available]
        if missing:
            raise DatasetError(f"{path} has no data key(s) {missing}; available keys are {available}")
        listed = attrs.pop(IMAGE_KEYS_ATTR, [])
        if not isinstance(listed, list) or not all(isinstance(key, str) for key in listed):
            raise DatasetError(f"{path}: the attribute '{IMAGE_KEYS_ATTR}' must be a list of key names, got {listed!r}")
        unknown = [key for key in [*listed, *image_keys] if key not in available]
        if unknown:
            raise DatasetError(f"{path} lists image key(s) {unknown} that it does not hold; its data keys are {available}")
        as_images = set(listed) | set(image_keys)
        rename = dict(rename or {})
        data = {rename.get(key, key): np.asarray(data_group[key][...]) for key in wanted if key not in as_images}
        frames = {rename.get(key, key): as_frames(rename.get(key, key), data_group[key]) for key in wanted if key in as_images}
        episode_ends = np.asarray(root["meta"]["episode_ends"][...])
        return cls(data=data, episode_ends=episode_ends, attrs=attrs, frames=frames)


def concatenate(parts: Sequence[Episodes]) -> Episodes:
    """Join several ``Episodes`` (same keys and per-step shapes) into one; attrs of the first win."""
    parts = [part for part in parts if part.num_episodes > 0]
    if not parts:
        raise DatasetError("concatenate needs at least one non-empty Episodes")
    keys = sorted(parts[0].data)
    for i, part in enumerate(parts[1:], start=1):
        if sorted(part.data) != keys:
            raise DatasetError(f"cannot concatenate: part {i} has keys {sorted(part.data)} but part 0 has {keys}")
        for key in keys:
            if part.data[key].shape[1:] != parts[0].data[key].shape[1:]:
                raise DatasetError(
                    f"cannot concatenate: '{key}' has per-step shape {part.data[key].shape[1:]} in part {i} "
                    f"but {parts[0].data[key].shape[1:]} in part 0"
                )
        if sorted(part.frames) != sorted(parts[0].frames):
            raise DatasetError(f"cannot concatenate: part {i} has image keys {sorted(part.frames)} "
                               f"but part 0 has {sorted(parts[0].frames)}")
    offsets = np.cumsum([0] + [part.num_steps for part in parts[:-1]])
    return Episodes(
        data={key: np.concatenate([part.data[key] for part in parts]) for key in keys},
        episode_ends=np.concatenate([part.episode_ends + off for part, off in zip(parts, offsets)]),
        attrs=dict(parts[0].attrs),
        frames={key: Frames.concat([part.frames[key] for part in parts]) for key in parts[0].frames},
    )


# ---------------------------------------------------------------------- helpers


def _coerce(key: str, value: Any) -> np.ndarray:
    """One dtype per kind of data: float -> float32 (what the networks use), task int -> int64.

    Keys in FLOAT64_KEYS keep float64: simulator states must replay exactly.
    """
    value = np.asarray(value)
    if key in FLOAT64_KEYS and value.dtype.kind == "f":
        value = value.astype(np.float64)
    elif value.dtype.kind == "f" and value.dtype != np.float32:
        with np.errstate(over="ignore"):  # overflow shows up as inf and is reported by validate
            value = value.astype(np.float32)
    elif key == TASK and value.dtype.kind in "iu" and value.dtype != np.int64:
        value = value.astype(np.int64)
    return value


def _is_zip_path(path: Path) -> bool:
    return path.name.endswith(".zip")


# ------------------------------------------------------------------------------ validation, in order
def _check_keys(data: Mapping[str, np.ndarray], required: Sequence[str]) -> None:
    """Non-empty, the required keys present, string keys, numeric arrays with a time dimension."""
    present = sorted(data.keys())
    if not data:
        raise DatasetError("empty dataset: data has no keys; expected at least 'obs' and 'action'")
    for key in required:
        if key not in data:
            raise DatasetError(
                f"required key '{key}' is missing; the dataset has keys {present} "
                "(add it, or map a stored name to it with Episodes.load(..., rename={...}))"
            )
    for key, value in data.items():
        if not isinstance(key, str):
            raise DatasetError(f"data keys must be strings, got {key!r}")
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise DatasetError(
                f"'{key}' has unsupported dtype {value.dtype}; only bool, integer and float arrays "
                "are supported (convert or drop this key)"
            )
        if value.ndim == 0:
            raise DatasetError(f"'{key}' is a scalar; every key needs a leading time dimension (N, ...)")


def _check_episode_ends(ends: np.ndarray) -> None:
    """Integer, 1-D, non-empty, positive and strictly increasing (a repeated end is an empty episode)."""
    if ends.ndim != 1:
        raise DatasetError(f"episode_ends must be 1-D (E,), got shape {ends.shape}")
    if ends.dtype.kind not in "iu":
        raise DatasetError(f"episode_ends must be integers, got dtype {ends.dtype}")
    if len(ends) == 0:
        raise DatasetError("empty dataset: episode_ends is empty (no episodes)")
    lengths = np.diff(ends, prepend=0)
    if ends[0] < 0 or (lengths < 0).any():
        bad = int(np.argmax(lengths < 0))
        raise DatasetError(
            f"episode_ends must start > 0 and be strictly increasing, but episode_ends[{bad}]="
            f"{int(ends[bad])} follows {0 if bad == 0 else int(ends[bad - 1])}"
        )
    if (lengths == 0).any():
        bad = int(np.argmax(lengths == 0))
        raise DatasetError(
            f"episode {bad} is empty (zero length): episode_ends must start > 0 and be strictly "
            "increasing; remove the empty episode"
        )


def _check_shapes(data: Mapping[str, np.ndarray], num_steps: int) -> None:
    """One entry per step in every key; obs/action 2-D; task a non-negative integer vector."""
    for key, value in data.items():
        if len(value) != num_steps:
            raise DatasetError(
                f"'{key}' has {len(value)} steps but episode_ends[-1] is {num_steps}; "
                "every key needs one entry per step"
            )
    for key in (OBS, ACTION):
        if key in data and data[key].ndim != 2:
            raise DatasetError(
                f"'{key}' must be 2-D (steps, dims) but has shape {data[key].shape}; "
                "flatten per-step features to a vector"
            )
        if key in data and data[key].dtype.kind != "f":
            raise DatasetError(
                f"'{key}' holds {data[key].dtype} values; observations and actions must be floating point "
                "(convert them with .astype('float32') if the integers are real measurements)"
            )
    if TASK in data:
        task = data[TASK]
        if task.dtype.kind not in "iu" or task.ndim != 1:
            raise DatasetError(
                f"'task' must be a 1-D integer array (N,) of task ids, got dtype {task.dtype} "
                f"and shape {task.shape}"
            )
        if (task < 0).any():
            step = int(np.argmax(task < 0))
            raise DatasetError(f"'task' ids must be >= 0, found {int(task[step])} at step {step}")


def _check_frames(frames: Mapping[str, Frames], data: Mapping[str, np.ndarray], num_steps: int) -> None:
    """One frame per step; image keys are strings and not also data keys (dtype and shape: `Frames`)."""
    for key, value in frames.items():
        if not isinstance(key, str):
            raise DatasetError(f"image keys must be strings, got {key!r}")
        if key in data:
            raise DatasetError(f"'{key}' is both a data key and an image key; rename one of them")
        if len(value) != num_steps:
            raise DatasetError(
                f"image key '{key}' has {len(value)} frames but episode_ends[-1] is {num_steps}; "
                "every step needs one frame"
            )


def _refuse_own_frame_store(frames: Mapping[str, Frames], target: Path) -> None:
    """Saving over the store the frames are read from would delete them while they are copied."""
    target = target.resolve()
    for key, value in frames.items():
        for source in value.sources:
            store = getattr(source, "store", None)
            where = getattr(store, "root", None) or getattr(store, "path", None)
            if where is not None and Path(where).resolve() == target:
                raise DatasetError(
                    f"cannot save to {target}: the frames of '{key}' are read from that store; "
                    "save to another path (then move it), or load the frames into memory first"
                )


def _check_finite(data: Mapping[str, np.ndarray], ends: np.ndarray) -> None:
    """No NaN/inf in float arrays, reported by episode and step."""
    for key, value in data.items():
        if value.dtype.kind != "f":
            continue
        finite_rows = np.isfinite(value).reshape(len(value), -1).all(axis=1)
        if not finite_rows.all():
            step = int(np.argmin(finite_rows))
            episode = int(np.searchsorted(ends, step, side="right"))
            start = 0 if episode == 0 else int(ends[episode - 1])
            kind = "NaN" if np.isnan(value[step]).any() else "inf"
            raise DatasetError(
                f"'{key}' contains {kind} (first in episode {episode} at step {step - start}); "
                "clean or drop that episode (float64 values beyond float32 range also become inf)"
            )
