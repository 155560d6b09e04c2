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
        self._history: list[np.ndarray] = []

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

    def reset(self) -> None:
        """Forget the observation history (a new episode)."""
        self._history = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One control step: raw observation (Do,) -> raw action (Da,)."""
        if not self._layers:
            raise RuntimeError("no weights yet: call set_weights(theta) first")
        obs = np.array(obs, np.float32).reshape(self.obs_dim)
        self._history = [*self._history[1:], obs] if self._history else [obs] * self.obs_steps
        h = obs if self.obs_steps == 1 else np.concatenate(self._history[-self.obs_steps :])
        last = len(self._layers) - 1
        for i, (w, b) in enumerate(self._layers):
            h = h @ w + b
            if i < last:
                if self.activation == "relu":
                    np.maximum(h, 0.0, out=h)
                elif self.activation == "tanh":
                    h = np.tanh(h)
                else:  # mish
                    h = h * np.tanh(np.log1p(np.exp(h)))
        return h
