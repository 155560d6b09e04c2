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
from pathlib import Path

import numpy as np

FORMAT = "lwd-controller"
VERSION = 1


class Controller:
    def __init__(self, spec: dict, normalisers: dict[str, np.ndarray]) -> None:
        if spec.get("format") != FORMAT or spec.get("version") != VERSION:
            raise ValueError(f"not an {FORMAT} v{VERSION} description: {spec.get('format')!r} v{spec.get('version')!r}")
        self.obs_dim = int(spec["obs_dim"])
        self.action_dim = int(spec["action_dim"])
        self.obs_steps = int(spec["policy_obs_steps"])
        self.sizes = [int(s) for s in spec["layer_sizes"]]
        self.activation = spec["activation"]
        self.num_params = sum(i * o + o for i, o in zip(self.sizes[:-1], self.sizes[1:]))
        k = self.obs_steps
        self._fold = (np.tile(normalisers["obs_scale"], k), np.tile(normalisers["obs_shift"], k),
                      normalisers["action_scale"], normalisers["action_shift"])
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []
        # Preallocated buffers: the input (the last k observations, oldest first) and one per layer,
        # so a control step allocates only the action it returns.
        self._input = np.empty(k * self.obs_dim, np.float32)
        self._outputs = [np.empty(width, np.float32) for width in self.sizes[1:]]
        self._started = False
        self._relu = self.activation == "relu"
        self._plan: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = []

    @classmethod
    def load(cls, folder: str | Path) -> "Controller":
        folder = Path(folder)
        spec = json.loads((folder / "controller.json").read_text())
        with np.load(folder / "controller.npz") as arrays:
            normalisers = {k: np.asarray(arrays[k], np.float64) for k in arrays.files}
        return cls(spec, normalisers)

    def set_weights(self, theta: np.ndarray) -> None:
        """Install a generated weight vector (P,): normalised obs in, normalised action out, layer by
        layer weight (in, out) then bias (out,); the normalisers are folded in here."""
        theta = np.asarray(theta, np.float32).reshape(-1)
        if theta.size != self.num_params:
            raise ValueError(f"expected {self.num_params} weights, got {theta.size}")
        layers, offset = [], 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            w = theta[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out)
            offset += fan_in * fan_out
            b = theta[offset : offset + fan_out]
            offset += fan_out
            layers.append((w.astype(np.float64), b.astype(np.float64)))
        in_scale, in_shift, out_scale, out_shift = self._fold
        w, b = layers[0]
        layers[0] = (w * in_scale[:, None], b + in_shift @ w)
        w, b = layers[-1]
        layers[-1] = (w * out_scale[None, :], b * out_scale + out_shift)
        self._layers = [(w.astype(np.float32), b.astype(np.float32)) for w, b in layers]
        last = len(self._layers) - 1
        self._plan = [(w, b, out, i < last) for i, ((w, b), out) in enumerate(zip(self._layers, self._outputs))]

    def reset(self) -> None:
        """Forget the observation history (a new episode)."""
        self._started = False

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One control step: raw observation (Do,) -> raw action (Da,)."""
        if not self._layers:
            raise RuntimeError("no weights yet: call set_weights(theta) first")
        x, d = self._input, self.obs_dim
        if self._started:  # slide the history by one observation
            x[:-d] = x[d:]
            x[-d:] = obs  # (casts to float32; a wrong size raises)
        else:  # before k observations exist, the first one stands in for the missing ones
            x[:] = np.tile(np.asarray(obs, np.float32).reshape(d), self.obs_steps)
            self._started = True
        h = x
        for w, b, out, hidden in self._plan:
            np.dot(h, w, out=out)
            out += b
            if hidden:
                if self._relu:
                    np.maximum(out, 0.0, out=out)
                elif self.activation == "tanh":
                    np.tanh(out, out=out)
                else:  # mish: x * tanh(softplus(x))
                    out *= np.tanh(np.log1p(np.exp(out)))
            h = out
        return h.copy()
