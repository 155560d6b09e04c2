"""BC at run time: the MLP on the last To observations at every step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from lwd.data.keys import ACTION, OBS
from lwd.methods.base import Policy
from lwd.methods.history import ObsHistory

if TYPE_CHECKING:
    from lwd.methods.bc.model import BC


class BCPolicy(Policy):
    def __init__(self, model: "BC") -> None:
        super().__init__()
        self.model = model.eval()
        self._task: torch.Tensor | None = None
        self._history = ObsHistory(model.cfg.obs_steps)  # normalised observations

    def reset(self, seed: int, task: int | None = None) -> None:
        del seed  # deterministic policy
        if self.model.num_task_inputs and task is None:
            raise ValueError("this BC model is multitask: pass the task id to reset()")
        self._task = torch.tensor([task]) if task is not None and self.model.num_task_inputs else None
        self._history.clear()

    @torch.no_grad()
    def act(self, obs: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """obs (Do,) raw, or for a model trained on frames {"obs": (Do,), <image key>: (H, W, 3) uint8}
        (the frozen encoder turns it into the step vector [obs, features]) -> action (Da,) raw."""
        vision = self.model.vision
        if vision is not None and not isinstance(obs, dict):
            raise ValueError(f"this BC model reads camera frames {list(vision.image_keys)}: act() takes "
                             "{'obs': low-dim, <image key>: frame} observations")
        step = np.asarray(obs[OBS] if isinstance(obs, dict) else obs, np.float32)
        if vision is not None:
            step = np.concatenate([step, vision.features(obs)])  # (Do + n_cams * F,)
        normalizer = self.model.step_normalizer
        obs_n = normalizer.normalize(OBS, step).astype(np.float32)
        self._history.push(obs_n)
        self.steps += 1
        action = self.model(torch.from_numpy(np.concatenate(self._history.items))[None], self._task)[0].numpy()
        return normalizer.unnormalize(ACTION, action).astype(np.float32)
