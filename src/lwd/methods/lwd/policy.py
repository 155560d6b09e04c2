"""LWD at run time: regenerate the small MLP every H steps, run it at every control step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from lwd.data.keys import ACTION, OBS
from lwd.methods.base import GenerationRuntime, Policy
from lwd.methods.history import ObsHistory
from lwd.methods.lwd.style import style_request
from lwd.methods.target_mlp import fold_affine, numpy_mlp_forward

if TYPE_CHECKING:
    from lwd.methods.lwd.model import LWD


class LWDPolicy(Policy):
    """Closed-loop runtime for one episode: regenerate theta every H steps, run the MLP every step.

    `action_horizon=None` uses the training H; 0 generates once per episode. Sampling noise comes
    from a generator seeded by the episode seed, so an episode's result never depends on which
    other episodes ran or how many envs ran in parallel.

    Each generated MLP gets the normalisers folded into its first and last layers, so a plain
    control step is only the MLP on raw observations (the prior still sees normalised ones).

    A model trained on camera frames observes dicts ({"obs": low-dim, <image key>: (H, W, 3) uint8})
    and turns each into its raw step vector [obs, features] with the frozen encoder first (every
    step); from there on everything above holds for step vectors in place of observations.

    A run trained with style_condition takes `style` (and `guidance`) at run time: every generation
    is then guided toward that style (`lwd.methods.lwd.style`); without it generations are unconditional.
    """

    def __init__(self, model: "LWD", runtime: GenerationRuntime) -> None:
        super().__init__()
        self.model = model.eval()
        self.horizon = model.cfg.horizon if runtime.action_horizon is None else runtime.action_horizon
        if self.horizon < 0:
            raise ValueError(f"action_horizon must be >= 0 (0 = once per episode), got {self.horizon}")
        self.sampler, self.inference_steps = model.sampling(runtime)
        self.style = style_request(model, runtime)
        """The style asked for (id, guidance), or None: unconditional generations."""
        self.delay = runtime.generation_delay or 0
        if self.delay and not 0 < self.delay < max(self.horizon, 1):
            raise ValueError(f"generation_delay={self.delay} must be below the action horizon H={self.horizon} "
                             "(and needs regenerations: not with 'episode')")
        self._pending: tuple[int, list, list] | None = None  # (step it becomes active, layers, raw layers)
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []  # normalised space, as generated
        self._raw_layers: list[tuple[np.ndarray, np.ndarray]] = []  # raw obs in, raw action out
        k = model.cfg.policy_obs_steps
        self._policy_obs_steps, self._obs_shape = k, (model.info.obs_dim,)  # read every step
        self._normalizer = model.step_normalizer  # of step vectors: the observation's alone on state data
        obs_scale, obs_shift = self._normalizer.affine(OBS)
        act_scale, act_shift = self._normalizer.affine(ACTION, inverse=True)
        self._fold = (np.tile(obs_scale, k), np.tile(obs_shift, k), act_scale, act_shift)
        self._generator = torch.Generator().manual_seed(0)
        self._task: int | None = None
        self._t = 0
        self._history = ObsHistory(model.cfg.obs_steps)  # raw observations

    def reset(self, seed: int, task: int | None = None) -> None:
        if self.model.cfg.uses_task and task is None:
            raise ValueError("this LWD model is task-conditioned: pass the task id to reset()")
        self._generator = torch.Generator().manual_seed(int(seed))
        self._task = task
        self._t = 0
        self._history.clear()
        self._pending = None

    def _generate(self) -> tuple[list, list]:
        """A new policy from the current history: (layers as generated, layers on raw obs/actions)."""
        hist = self._normalizer.normalize(OBS, self._history.stacked())  # (To, Ds)
        theta = self.model.generate_policy(self._task, hist, self._generator, self.sampler, self.inference_steps, self.style)
        layers = [(w[0].numpy().copy(), b[0, 0].numpy().copy()) for w, b in self.model.target.unflatten(theta)]
        self.generations += 1
        return layers, fold_affine(layers, *self._fold)

    def step_vector(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """One raw observation -> what the history keeps and the MLP reads: the observation itself, or
        for an image model [obs, features of its frames] (the frozen encoder runs here)."""
        vision = self.model.vision
        if vision is not None and not isinstance(obs, dict):
            raise ValueError(f"this LWD model reads camera frames {list(vision.image_keys)}: act() takes "
                             "{'obs': low-dim, <image key>: frame} observations")
        low_dim = np.array(obs[OBS] if isinstance(obs, dict) else obs, np.float32)  # a copy: never alias the caller's buffer
        if low_dim.shape != self._obs_shape:
            raise ValueError(f"expected one observation of shape {self._obs_shape}, got {low_dim.shape}")
        if vision is None:
            return low_dim
        return np.concatenate([low_dim, vision.features(obs)])  # (Do + n_cams * F,)

    def act(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        obs = self.step_vector(obs)
        self._history.push(obs)
        if self._t == 0 or (self.horizon > 0 and self._t % self.horizon == 0):
            if self._t == 0 or not self.delay:
                self._layers, self._raw_layers = self._generate()
            else:  # generated from this observation, in use `delay` steps later
                self._pending = (self._t + self.delay, *self._generate())
        if self._pending is not None and self._t >= self._pending[0]:
            _, self._layers, self._raw_layers = self._pending
            self._pending = None
        self._t += 1
        self.steps += 1
        k = self._policy_obs_steps
        policy_in = obs if k == 1 else np.concatenate(self._history.last(k))  # (k*Do,) oldest first
        return numpy_mlp_forward(self.model.target, self._raw_layers, policy_in)

    def policy_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The active generated MLP as NumPy (weight (in, out), bias (out,)) pairs, in normalised space
        (normalised obs in, normalised action out), exactly as the decoder produced it."""
        return self._layers
