"""A generated LWD policy at the control rate, in plain NumPy: copy this one file to the robot.

`lwd export RUN --format npz --out DIR` writes `controller.json` (the MLP's layer layout and
activation), `controller.npz` (the observation and action normalisers) and a copy of this file as
`lwd_controller.py`. It imports only NumPy and the standard library: no torch, no lwd.

    from lwd_controller import Controller
    controller = Controller.load("DIR")
    controller.set_weights(theta)   # (P,) float32, a weight vector from LWD's generator
    action = controller.act(obs)    # (Do,) raw observation -> (Da,) raw action, every control step

New weights can arrive at any step (`set_weights` again); the observation history carries over.
The normalisers are folded into the first and last layer once per weight vector, so a control
step is only the MLP.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "lwd-controller"
VERSION = 1
ACTIVATIONS = ("relu", "tanh", "mish")
NORMALISERS = ("obs_scale", "obs_shift", "action_scale", "action_shift")


def check_spec(spec: object, where: str = "controller.json") -> None:
    """Refuse a description that is not exactly what `lwd export` writes, naming the key: a wrong
    type, size or activation would otherwise run (an unknown activation used to run as mish)."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must hold a JSON object, got {type(spec).__name__}")
    if spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise ValueError(f"{where} is not an {FORMAT} v{VERSION} description: {spec.get('format')!r} v{spec.get('version')!r}")
    for key in ("obs_dim", "action_dim", "policy_obs_steps"):
        value = spec.get(key)
        if type(value) is not int or value < 1:
            raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
    sizes = spec.get("layer_sizes")
    if not isinstance(sizes, list) or len(sizes) < 2 or any(type(s) is not int or s < 1 for s in sizes):
        raise ValueError(f"{where}: layer_sizes must be a list of at least 2 positive integers, got {sizes!r}")
    if sizes[0] != spec["policy_obs_steps"] * spec["obs_dim"] or sizes[-1] != spec["action_dim"]:
        raise ValueError(f"{where}: layer_sizes {sizes} must start at policy_obs_steps x obs_dim = "
                         f"{spec['policy_obs_steps'] * spec['obs_dim']} and end at action_dim = {spec['action_dim']}")
    if spec.get("activation") not in ACTIVATIONS:
        raise ValueError(f"{where}: activation must be one of {', '.join(ACTIVATIONS)}, got {spec.get('activation')!r}")


def check_normalisers(arrays: dict, obs_dim: int, action_dim: int, where: str = "controller.npz") -> None:
    """Each normaliser present, a vector of the right length, and finite (NaN would reach the robot)."""
    for key in NORMALISERS:
        if key not in arrays:
            raise ValueError(f"{where} has no {key}")
        width = obs_dim if key.startswith("obs") else action_dim
        value = arrays[key]
        if value.shape != (width,):
            raise ValueError(f"{where}: {key} has shape {value.shape}, expected ({width},)")
        if not np.isfinite(value).all():
            raise ValueError(f"{where}: {key} holds NaN or infinite values")


class Controller:
    def __init__(self, spec: dict, normalisers: dict[str, np.ndarray]) -> None:
        check_spec(spec)
        check_normalisers(normalisers, int(spec["obs_dim"]), int(spec["action_dim"]))
        self.obs_dim = int(spec["obs_dim"])
        self.action_dim = int(spec["action_dim"])
        self.obs_steps = int(spec["policy_obs_steps"])
        self.sizes = [int(s) for s in spec["layer_sizes"]]
        self.activation = spec["activation"]
        self.num_params = sum(i * o + o for i, o in zip(self.sizes[:-1], self.sizes[1:]))
        k = self.obs_steps
        self._fold = (np.tile(normalisers["obs_scale"], k), np.tile(normalisers["obs_shift"], k),
                      normalisers["action_scale"], normalisers["action_shift"])
        # Preallocated buffers, so a control step allocates only the action it returns: the input
        # (the last k observations, oldest first) and each hidden layer's output, each followed by a
        # constant 1 so that a layer is one matrix-vector product with its bias as the last row
        # (a step makes 3 fewer NumPy calls: about 20% faster).
        self._input = np.zeros(k * self.obs_dim + 1, np.float32)
        self._input[-1] = 1.0
        self._hidden = [np.zeros(width + 1, np.float32) for width in self.sizes[1:-1]]
        for buffer in self._hidden:
            buffer[-1] = 1.0
        self._output = np.empty(self.sizes[-1], np.float32)
        self._started = False
        self._relu = self.activation == "relu"
        # ReLU as np.maximum against a zero *array*: against a scalar (np.float32(0) or 0.0) NumPy
        # converts the scalar on every call, which made each ReLU 4x slower than the layer's matmul.
        self._zeros = [np.zeros(width, np.float32) for width in self.sizes[1:-1]]
        n, d = k * self.obs_dim, self.obs_dim
        # views made once: sliding the history is two copies, no slicing per step
        self._history_new, self._history_old, self._newest = self._input[: n - d], self._input[d:n], self._input[n - d : n]
        self._hidden_plan: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._final: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, folder: str | Path) -> "Controller":
        folder = Path(folder)
        try:
            spec = json.loads((folder / "controller.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{folder / 'controller.json'} is not readable JSON ({err})") from err
        check_spec(spec, str(folder / "controller.json"))
        try:
            with np.load(folder / "controller.npz", allow_pickle=False) as arrays:
                normalisers = {k: np.asarray(arrays[k], np.float64) for k in arrays.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, AttributeError) as err:
            raise ValueError(f"{folder / 'controller.npz'} is not a readable npz file ({err})") from err
        check_normalisers(normalisers, spec["obs_dim"], spec["action_dim"], str(folder / "controller.npz"))
        return cls(spec, normalisers)

    def set_weights(self, theta: np.ndarray) -> None:
        """Install a generated weight vector (P,): normalised obs in, normalised action out, layer by
        layer weight (in, out) then bias (out,); the normalisers are folded in here."""
        theta = np.asarray(theta, np.float32).reshape(-1)
        if theta.size != self.num_params:
            raise ValueError(f"expected {self.num_params} weights, got {theta.size}")
        in_scale, in_shift, out_scale, out_shift = self._fold
        shapes = list(zip(self.sizes[:-1], self.sizes[1:]))
        matrices, offset = [], 0
        for i, (fan_in, fan_out) in enumerate(shapes):
            w = theta[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            b = theta[offset : offset + fan_out]
            offset += fan_out
            wb = np.empty((fan_in + 1, fan_out), np.float32)  # [weight; bias]: the input ends in a 1
            if i in (0, len(shapes) - 1):  # fold the normalisers in float64 (only the outer layers)
                w64, b64 = w.astype(np.float64), b.astype(np.float64)
                if i == 0:
                    w64, b64 = w64 * in_scale[:, None], b64 + in_shift @ w64
                if i == len(shapes) - 1:
                    w64, b64 = w64 * out_scale[None, :], b64 * out_scale + out_shift
                wb[:-1], wb[-1] = w64, b64
            else:  # hidden layers are installed as they come
                wb[:-1], wb[-1] = w, b
            matrices.append(wb)
        # Per layer: its input (ending in a constant 1), [weight; bias] and where the output goes
        # (a hidden buffer's first `width` entries, or the action buffer).
        inputs = [self._input, *self._hidden]
        targets = [buffer[:-1] for buffer in self._hidden] + [self._output]
        self._hidden_plan = list(zip(inputs[:-1], matrices[:-1], targets[:-1], self._zeros))
        self._final = (inputs[-1], matrices[-1], targets[-1])

    def reset(self) -> None:
        """Forget the observation history (a new episode)."""
        self._started = False

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One control step: raw observation (Do,) -> raw action (Da,)."""
        if self._final is None:
            raise RuntimeError("no weights yet: call set_weights(theta) first")
        if self._started:  # slide the history by one observation (numpy handles the overlap)
            np.copyto(self._history_new, self._history_old)
            np.copyto(self._newest, obs)  # (casts to float32; a wrong size raises)
        else:  # before k observations exist, the first one stands in for the missing ones
            self._input[:-1] = np.tile(np.asarray(obs, np.float32).reshape(self.obs_dim), self.obs_steps)
            self._started = True
        for h, wb, out, zeros in self._hidden_plan:
            np.dot(h, wb, out=out)
            if self._relu:
                np.maximum(out, zeros, out=out)
            elif self.activation == "tanh":
                np.tanh(out, out=out)
            else:  # mish (checked at load): x * tanh(softplus(x))
                out *= np.tanh(np.log1p(np.exp(out)))
        h, wb, out = self._final
        np.dot(h, wb, out=out)
        return out.copy()
