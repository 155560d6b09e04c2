"""Camera frames of an episode store: per-step uint8 images, read from the store only when asked.

Why frames are not one more ``Episodes.data`` array: a PushT image dataset of 200 demos holds
~30k frames of 96 x 96 x 3 (0.8 GB), a robomimic one far more, and everything that handles
``data`` (normaliser fit, splits, hashes, exporters) loads whole arrays. A :class:`Frames` is a
view (which rows of which stored arrays make up this dataset's steps) that reads only the
frames an index asks for, so selecting episodes, splitting and cutting training windows never
loads the rest.

Naming (the one convention of every image key, in files, datasets, env observations and run
configs): an image key is named after its camera, as the source names it, e.g. ``image`` for
PushT's single top-down view (Diffusion Policy's zarr calls it ``img``; ``lwd import`` renames it)
and robomimic's ``agentview_image`` / ``robot0_eye_in_hand_image`` for robosuite cameras. The
store lists its image keys in the root attribute ``image_keys`` (a JSON list); readers take
that list, never a guess from dtype or shape. Frames are (H, W, 3) RGB, uint8 0-255, row 0 at
the top of the picture.

On disk every image key is ``data/<key>``, shape (N, H, W, 3) uint8, chunked one frame per
chunk (:data:`FRAME_CHUNK`), so reading a batch of frames decodes those frames only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lwd.data.errors import DatasetError

#: Root attribute of an episode store that lists its image keys.
IMAGE_KEYS_ATTR = "image_keys"
#: Frames per zarr chunk: one, so a random batch reads only the frames it uses.
FRAME_CHUNK = 1
#: Frames copied per block when a store is written or hashed (bounds the memory such a pass needs).
BLOCK_FRAMES = 256


def check_frame_array(key: str, value: Any) -> None:
    """Raise :class:`DatasetError` unless `value` is a uint8 (N, H, W, 3) array (or array-like with those attributes)."""
    dtype, shape = getattr(value, "dtype", None), tuple(getattr(value, "shape", ()))
    if dtype is None or np.dtype(dtype) != np.uint8:
        raise DatasetError(
            f"image key '{key}' holds {dtype} values; frames must be uint8 RGB in 0-255 "
            "(e.g. (frame * 255).round().astype(np.uint8) for floats in [0, 1])"
        )
    if len(shape) != 4 or shape[3] != 3 or min(shape[1:3], default=0) < 1:
        raise DatasetError(
            f"image key '{key}' has shape {shape}; frames must be (steps, height, width, 3) RGB, "
            "channels last (transpose (N, 3, H, W) with .transpose(0, 2, 3, 1))"
        )


class Frames:
    """(N, H, W, 3) uint8 frames of one camera, held in memory or read on demand from stored arrays.

    A ``Frames`` is a list of sources (NumPy arrays or zarr arrays, each (M, H, W, 3) uint8) and,
    per step, which source and which row of it holds the frame. Indexing (``frames[idx]``) reads
    only the rows asked for, each stored row once even if it is asked for several times (the
    padded history of a window repeats frames); :meth:`take` and :meth:`concat` make new views
    without reading anything.
    """

    def __init__(self, sources: Sequence[Any] | Any, source_of: np.ndarray | None = None, rows: np.ndarray | None = None,
                 key: str = "frames") -> None:
        """
        Args:
            sources: one array (then the frames are its rows, in order) or a sequence of arrays.
            source_of, rows: (N,) int, which source and which of its rows each step reads;
                both None: every row of every source, in order.
            key: the image key, for messages.
        """
        if not isinstance(sources, (list, tuple)):
            sources = (sources,)
        if not sources:
            raise DatasetError(f"image key '{key}': frames need at least one source array")
        for source in sources:
            check_frame_array(key, source)
        shapes = {tuple(s.shape[1:]) for s in sources}
        if len(shapes) > 1:
            raise DatasetError(f"image key '{key}': sources have different frame shapes {sorted(shapes)}")
        self.key = key
        self.sources = tuple(sources)
        if source_of is None and rows is None:
            counts = [int(s.shape[0]) for s in self.sources]
            source_of = np.repeat(np.arange(len(counts)), counts)
            rows = np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, np.int64)
        elif source_of is None or rows is None:
            raise ValueError("Frames: give both source_of and rows, or neither")
        self._source_of = np.asarray(source_of, dtype=np.int32).reshape(-1)  # (N,)
        self._rows = np.asarray(rows, dtype=np.int64).reshape(-1)  # (N,)
        if len(self._source_of) != len(self._rows):
            raise ValueError(f"Frames: source_of has {len(self._source_of)} entries but rows has {len(self._rows)}")

    # ------------------------------------------------------------------ shape
    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(H, W, 3)"""
        return tuple(int(d) for d in self.sources[0].shape[1:])  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.frame_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    @property
    def in_memory(self) -> bool:
        """True when every source is a NumPy array (nothing is read from a store)."""
        return all(isinstance(s, np.ndarray) for s in self.sources)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else "in a store"
        return f"Frames({self.key!r}, {len(self)} x {self.frame_shape}, {where})"

    # ------------------------------------------------------------------ reading
    def __getitem__(self, index: Any) -> np.ndarray:
        """Frames at `index` (an int, a slice, or an int array of any shape) -> index shape + (H, W, 3) uint8.

        A tuple indexes the steps with its first entry and the pixels with the rest, as NumPy would
        (``frames[:, 0, 0]``: the top-left pixel of every frame); only the steps' frames are read."""
        if isinstance(index, tuple):
            picked = self[index[0]]
            return picked[(slice(None),) * (picked.ndim - 3) + index[1:]]
        steps = np.arange(len(self))[index]  # bounds, negatives and slices as NumPy reads them
        flat = np.asarray(steps, dtype=np.int64).reshape(-1)
        out = np.empty((len(flat), *self.frame_shape), dtype=np.uint8)
        source_of, rows = self._source_of[flat], self._rows[flat]
        for s in np.unique(source_of):
            picked = source_of == s
            wanted, inverse = np.unique(rows[picked], return_inverse=True)
            out[picked] = _read_rows(self.sources[int(s)], wanted)[inverse]
        return out.reshape(*np.shape(steps), *self.frame_shape)

    def to_numpy(self) -> np.ndarray:
        """Every frame, (N, H, W, 3) uint8 (loads them all)."""
        return self[:]

    def blocks(self, size: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The frames in order, `size` at a time: a pass over a dataset larger than memory."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    # ------------------------------------------------------------------ views
    def take(self, steps: np.ndarray) -> Frames:
        """A view of the frames at `steps` ((K,) int), in that order; reads nothing."""
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        if steps.size and (steps.min() < -len(self) or steps.max() >= len(self)):
            raise IndexError(f"frame steps must be in [0, {len(self)}), got min {steps.min()} max {steps.max()}")
        return Frames(self.sources, self._source_of[steps], self._rows[steps], key=self.key)

    @staticmethod
    def concat(parts: Sequence[Frames]) -> Frames:
        """The frames of several views one after another (same frame shape); reads nothing."""
        if not parts:
            raise DatasetError("Frames.concat needs at least one part")
        sources: list[Any] = []
        source_of, rows = [], []
        for part in parts:
            if part.frame_shape != parts[0].frame_shape:
                raise DatasetError(f"image key '{parts[0].key}': cannot join frames of shape {part.frame_shape} "
                                   f"to frames of shape {parts[0].frame_shape}")
            ids = []
            for source in part.sources:  # one entry per distinct array, so reads stay grouped
                known = next((i for i, s in enumerate(sources) if s is source), None)
                if known is None:
                    sources.append(source)
                    known = len(sources) - 1
                ids.append(known)
            source_of.append(np.asarray(ids, dtype=np.int32)[part._source_of])
            rows.append(part._rows)
        return Frames(sources, np.concatenate(source_of), np.concatenate(rows), key=parts[0].key)

    def equal(self, other: Frames) -> bool:
        """Same shape and the same pixels (reads both, block by block)."""
        if self.shape != other.shape:
            return False
        return all(np.array_equal(self[s : s + BLOCK_FRAMES], other[s : s + BLOCK_FRAMES])
                   for s in range(0, len(self), BLOCK_FRAMES))


def as_frames(key: str, value: Any) -> Frames:
    """`value` (a Frames, a NumPy or zarr array of frames, or anything np.asarray takes) as a checked Frames named `key`."""
    if isinstance(value, Frames):
        if value.key != key:
            return Frames(value.sources, value._source_of, value._rows, key=key)
        return value
    if not hasattr(value, "oindex"):  # zarr arrays stay in their store
        value = np.asarray(value)
    return Frames(value, key=key)


def _read_rows(source: Any, rows: np.ndarray) -> np.ndarray:
    """rows ((K,) sorted unique) of one source -> (K, H, W, 3); a contiguous run is read as one slice."""
    if len(rows) == 0:
        return np.zeros((0, *source.shape[1:]), dtype=np.uint8)
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 == len(rows):
        return np.asarray(source[first : last + 1])
    if isinstance(source, np.ndarray):
        return source[rows]
    return np.asarray(source.oindex[rows])  # zarr: only these rows' chunks are decoded


class FrameSpool:
    """Camera frames written to disk as they arrive, episode by episode: a collection of image demos
    then holds one episode's frames in memory, not the dataset's (`lwd demos` on an image suite).

    A spool is a zarr (format 2) group in `folder` with one growing (N, H, W, 3) uint8 array per image
    key, one frame per chunk as in an episode store; `frames()` gives them as store-backed
    :class:`Frames`, which ``Episodes.save`` copies into the final store block by block. The folder is
    the caller's to remove once the dataset is saved."""

    def __init__(self, folder: Any, shapes: dict[str, tuple[int, int, int]]) -> None:
        import numcodecs
        import zarr

        root = zarr.open_group(str(folder), mode="w-", zarr_format=2)
        compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)  # the store's own
        self._arrays = {key: root.create_array(key, shape=(0, *shape), dtype=np.uint8, chunks=(FRAME_CHUNK, *shape),
                                               compressors=compressor) for key, shape in shapes.items()}

    def append(self, key: str, frames: np.ndarray) -> None:
        """Add one episode's frames (T, H, W, 3) uint8 of `key` after those already written."""
        if key not in self._arrays:
            raise DatasetError(f"the spool holds image keys {list(self._arrays)}, not '{key}'")
        check_frame_array(key, frames)
        self._arrays[key].append(np.ascontiguousarray(frames), axis=0)

    def frames(self) -> dict[str, Frames]:
        """Every frame written so far, per key, read from the spool on demand."""
        return {key: Frames(array, key=key) for key, array in self._arrays.items()}
