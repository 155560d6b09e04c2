"""Behaviour cloning with one MLP: the last To obs, stacked (+ task one-hot for multitask data) -> action.

The baseline every generative method must beat or match: it shows what a plain policy of the
same per-step size as LWD's generated MLP achieves on the same demonstrations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lwd.config import BCConfig, DataInfo, TrainConfig, to_dict
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.flops import count_flops, num_params
from lwd.methods.base import Method, Stage

_ACT = {"relu": nn.ReLU, "mish": nn.Mish, "tanh": nn.Tanh}


class BC(Method):
    name = "bc"

    def __init__(self, cfg: BCConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        super().__init__()
        if cfg.activation not in _ACT:
            raise ValueError(f"BCConfig.activation must be one of {sorted(_ACT)}, got {cfg.activation!r}")
        self.cfg = cfg
        self.info = info
        self.normalizer = normalizer
        self.num_task_inputs = info.num_tasks if info.num_tasks > 1 else 0
        sizes = [cfg.obs_steps * info.obs_dim + self.num_task_inputs, *cfg.hidden]
        layers: list[nn.Module] = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(i, o), _ACT[cfg.activation]()]
        layers.append(nn.Linear(sizes[-1], info.action_dim))
        self.net = nn.Sequential(*layers)

    def method_config(self) -> dict[str, Any]:
        return to_dict(self.cfg)

    def forward(self, obs: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """obs (B, To*Do) normalised (oldest first), task (B,) -> normalised action (B, Da)."""
        if self.num_task_inputs:
            if task is None:
                raise ValueError("this BC model is multitask: pass task ids")
            obs = torch.cat([obs, F.one_hot(task, self.num_task_inputs).float()], dim=-1)
        return self.net(obs)

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        spec = WindowSpec(obs_steps=self.cfg.obs_steps, action_steps=1, with_states=False)
        dataset = SegmentDataset(episodes, spec, self.normalizer)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset.sample_batch(rng.integers(len(dataset), size=train_cfg.batch_size))

        def loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
            pred = self(batch["obs_history"].flatten(1), batch.get("task"))  # (B, To*Do)
            value = F.mse_loss(pred, batch["actions"][:, 0])
            return value, {"mse": value.item()}

        return [Stage("bc", self.cfg.steps, self.net, sample, loss, lr=train_cfg.lr)]

    def make_policy(self, **runtime: Any) -> "BCPolicy":
        return BCPolicy(self)

    def cost(self, **runtime: Any) -> dict[str, Any]:
        obs = torch.zeros(1, self.cfg.obs_steps * self.info.obs_dim)
        task = torch.zeros(1, dtype=torch.long) if self.num_task_inputs else None
        flops = count_flops(lambda: self(obs, task))
        return {"params_total": num_params(self), "params_per_step": num_params(self), "flops_per_step": flops}


class BCPolicy:
    def __init__(self, model: BC) -> None:
        self.model = model.eval()
        self._task: torch.Tensor | None = None
        self._history: list[np.ndarray] = []  # last To normalised obs, (Do,) each
        self.steps = 0
        self.generations = 0

    def reset(self, seed: int, task: int | None = None) -> None:
        del seed  # deterministic policy
        if self.model.num_task_inputs and task is None:
            raise ValueError("this BC model is multitask: pass the task id to reset()")
        self._task = torch.tensor([task]) if task is not None and self.model.num_task_inputs else None
        self._history = []

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        obs_n = self.model.normalizer.normalize("obs", np.asarray(obs, np.float32)).astype(np.float32)
        # Before To observations exist, the first is repeated (as the training windows pad).
        self._history = [*self._history[1:], obs_n] if self._history else [obs_n] * self.model.cfg.obs_steps
        self.steps += 1
        action = self.model(torch.from_numpy(np.concatenate(self._history))[None], self._task)[0].numpy()
        return self.model.normalizer.unnormalize("action", action).astype(np.float32)
