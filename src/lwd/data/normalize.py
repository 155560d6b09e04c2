"""Per-dimension min-max normalisation to [-1, 1] (Diffusion Policy's low-dim "limits" mode).

Why min-max and not mean/std: diffusion models clip samples to [-1, 1], so the data must live in
exactly that box; min-max puts the training data's extremes on its faces.

Per dimension, with ``center = (max + min) / 2`` and ``half = (max - min) / 2``::

    normalize(x)   = (x - center) / half      min -> -1, max -> +1
    unnormalize(y) = y * half + center

A dimension whose range is below ``RANGE_EPS`` is treated as constant: it normalises to 0 and
unnormalises to the constant whatever the network outputs. (Diffusion Policy instead shifts it by
its minimum; we pin it so that, e.g., a gripper that never moves in the demos never moves at run
time either, and nothing is divided by a number close to zero.)

The fitted statistics travel with a trained model as a flat ``dict[str, Tensor]``
(``"obs.min"``, ``"obs.max"``, ...), which safetensors can store directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import numpy as np
import torch

from lwd.data.errors import DatasetError
from lwd.data.keys import ACTION, OBS

#: Ranges below this are treated as a constant dimension.
RANGE_EPS = 1e-4

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class MinMaxNormalizer:
    """Maps each fitted key's last dimension to [-1, 1]; works on NumPy arrays and torch tensors.

    Inputs may have any leading shape: (D,), (B, D), (B, T, D), ... Only the last dim must match.
    """

    def __init__(self, mins: Mapping[str, np.ndarray], maxs: Mapping[str, np.ndarray]) -> None:
        if set(mins) != set(maxs):
            raise ValueError(f"mins has keys {sorted(mins)} but maxs has {sorted(maxs)}; they must match")
        self._min: dict[str, np.ndarray] = {}
        self._max: dict[str, np.ndarray] = {}
        # Precomputed affine parameters (float64 for accuracy, cast to the input's dtype on use).
        self._center: dict[str, np.ndarray] = {}
        self._half: dict[str, np.ndarray] = {}  # 0 on constant dims
        self._inv_half: dict[str, np.ndarray] = {}  # 0 on constant dims
        for key in mins:
            lo = np.asarray(mins[key], dtype=np.float64).reshape(-1)
            hi = np.asarray(maxs[key], dtype=np.float64).reshape(-1)
            if lo.shape != hi.shape:
                raise ValueError(f"'{key}': min has {lo.size} dims but max has {hi.size}")
            if (hi < lo).any():
                raise ValueError(f"'{key}': max < min in dims {np.flatnonzero(hi < lo).tolist()}")
            constant = (hi - lo) < RANGE_EPS
            self._min[key], self._max[key] = lo.astype(np.float32), hi.astype(np.float32)
            self._center[key] = (hi + lo) / 2
            self._half[key] = np.where(constant, 0.0, (hi - lo) / 2)
            self._inv_half[key] = np.where(constant, 0.0, 2 / np.where(constant, 1.0, hi - lo))
        self._cache: dict[tuple[str, str, str, str], np.ndarray | torch.Tensor] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def fit(cls, data: Mapping[str, np.ndarray], keys: Iterable[str] = (OBS, ACTION)) -> MinMaxNormalizer:
        """Per-dimension min and max of each key over all leading axes.

        Fit on the *training* split only, so validation numbers are not flattered by statistics
        that have seen the validation data.
        """
        mins, maxs = {}, {}
        for key in keys:
            if key not in data:
                raise DatasetError(f"cannot fit the normaliser on '{key}': data has keys {sorted(data)}")
            x = np.asarray(data[key])
            if x.ndim < 2 or x.shape[0] == 0 or x.dtype.kind not in "biuf":
                raise DatasetError(
                    f"cannot fit the normaliser on '{key}': need a non-empty numeric (N, D) array, "
                    f"got dtype {x.dtype} and shape {x.shape}"
                )
            x = x.reshape(-1, x.shape[-1]).astype(np.float64)
            if not np.isfinite(x).all():
                dims = np.flatnonzero(~np.isfinite(x).all(axis=0)).tolist()
                raise DatasetError(
                    f"cannot fit the normaliser: '{key}' contains NaN or inf in dims {dims}; clean the data first"
                )
            mins[key], maxs[key] = x.min(axis=0), x.max(axis=0)
        return cls(mins, maxs)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor | np.ndarray]) -> MinMaxNormalizer:
        """Inverse of :meth:`state_dict` (e.g. after ``safetensors.torch.load_file``)."""
        mins, maxs = {}, {}
        for name, value in state.items():
            key, _, stat = name.rpartition(".")
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if stat == "min":
                mins[key] = array
            elif stat == "max":
                maxs[key] = array
            else:
                raise ValueError(f"unexpected normaliser entry '{name}'; expected '<key>.min' or '<key>.max'")
        return cls(mins, maxs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{"<key>.min": (D,) float32, "<key>.max": (D,) float32, ...}``, safetensors-ready."""
        state = {}
        for key in self._min:
            state[f"{key}.min"] = torch.from_numpy(self._min[key].copy())
            state[f"{key}.max"] = torch.from_numpy(self._max[key].copy())
        return state

    # ------------------------------------------------------------------ use

    @property
    def keys(self) -> list[str]:
        return list(self._min)

    def dim(self, key: str) -> int:
        """Number of dimensions the normaliser was fitted on for ``key``."""
        self._check_key(key)
        return int(self._min[key].size)

    def min(self, key: str) -> np.ndarray:
        """(D,) float32 fitted minimum of ``key``."""
        self._check_key(key)
        return self._min[key].copy()

    def max(self, key: str) -> np.ndarray:
        """(D,) float32 fitted maximum of ``key``."""
        self._check_key(key)
        return self._max[key].copy()

    def normalize(self, key: str, x: ArrayT) -> ArrayT:
        """(..., D) raw values -> (..., D) in [-1, 1] over the fitted range."""
        self._check_input(key, x)
        return (x - self._param(key, "center", x)) * self._param(key, "inv_half", x)

    def unnormalize(self, key: str, y: ArrayT) -> ArrayT:
        """(..., D) normalised values -> (..., D) raw values; constant dims return the constant."""
        self._check_input(key, y)
        return y * self._param(key, "half", y) + self._param(key, "center", y)

    def affine(self, key: str, inverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift), float64 (D,), with normalize(x) = x * scale + shift (or unnormalize if inverse).

        Lets a linear layer absorb the normalisation (see ``lwd.methods.target_mlp.fold_affine``).
        """
        self._check_key(key)
        if inverse:
            return self._half[key].copy(), self._center[key].copy()
        return self._inv_half[key].copy(), -self._center[key] * self._inv_half[key]

    def __repr__(self) -> str:
        dims = ", ".join(f"{key}: {self._min[key].size}" for key in self._min)
        return f"MinMaxNormalizer({dims})"

    # ------------------------------------------------------------------ internals

    def _check_key(self, key: str) -> None:
        if key not in self._min:
            raise KeyError(f"the normaliser has no statistics for '{key}'; it was fitted on {self.keys}")

    def _check_input(self, key: str, x: np.ndarray | torch.Tensor) -> None:
        self._check_key(key)
        dims = self._min[key].size
        if x.ndim == 0 or x.shape[-1] != dims:
            got = "a scalar" if x.ndim == 0 else f"{x.shape[-1]} dims"
            raise ValueError(f"{key} has {got} but the normaliser was fitted on {dims}")

    def _param(self, key: str, name: str, like: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """A parameter vector in the dtype (and device) of ``like``, so outputs keep the input type."""
        if isinstance(like, torch.Tensor):
            dtype = like.dtype if like.is_floating_point() else torch.float32
            cache_key = (key, name, str(dtype), str(like.device))
        else:
            dtype = like.dtype if like.dtype.kind == "f" else np.dtype(np.float32)
            cache_key = (key, name, str(dtype), "numpy")
        if cache_key not in self._cache:  # cached: a policy calls this every control step
            value = getattr(self, f"_{name}")[key]
            self._cache[cache_key] = (
                torch.as_tensor(value, dtype=dtype, device=like.device)
                if isinstance(like, torch.Tensor)
                else value.astype(dtype)
            )
        return self._cache[cache_key]
