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
    def act(self, obs: np.ndarray) -> np.ndarray:
        obs_n = self.model.normalizer.normalize(OBS, np.asarray(obs, np.float32)).astype(np.float32)
        self._history.push(obs_n)
        self.steps += 1
        action = self.model(torch.from_numpy(np.concatenate(self._history.items))[None], self._task)[0].numpy()
        return self.model.normalizer.unnormalize(ACTION, action).astype(np.float32)
