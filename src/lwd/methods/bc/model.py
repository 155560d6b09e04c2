"""Behaviour cloning with one MLP: the last To obs, stacked (+ task one-hot for multitask data) -> action.

The baseline every generative method must beat or match: it shows what a plain policy of the
same per-step size as LWD's generated MLP achieves on the same demonstrations.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lwd.config import DataInfo, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, OBS_HISTORY, TASK
from lwd.flops import count_flops, num_params
from lwd.methods.base import Cost, Method, RuntimeOptions, Stage, register_method
from lwd.methods.bc.config import BCConfig
from lwd.methods.bc.presets import PRESETS

_ACT = {"relu": nn.ReLU, "mish": nn.Mish, "tanh": nn.Tanh}


@register_method
class BC(Method):
    name = "bc"
    config_class = BCConfig
    presets = PRESETS
    cfg: BCConfig

    def __init__(self, cfg: BCConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        if cfg.activation not in _ACT:
            raise ValueError(f"BCConfig.activation must be one of {sorted(_ACT)}, got {cfg.activation!r}")
        super().__init__(cfg, info, normalizer)
        self.num_task_inputs = info.task_inputs
        sizes = [cfg.obs_steps * info.obs_dim + self.num_task_inputs, *cfg.hidden]
        layers: list[nn.Module] = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(i, o), _ACT[cfg.activation]()]
        layers.append(nn.Linear(sizes[-1], info.action_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """obs (B, To*Do) normalised (oldest first), task (B,) -> normalised action (B, Da)."""
        if self.num_task_inputs:
            if task is None:
                raise ValueError("this BC model is multitask: pass task ids")
            obs = torch.cat([obs, F.one_hot(task, self.num_task_inputs).float()], dim=-1)
        return self.net(obs)

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        spec = WindowSpec(obs_steps=self.cfg.obs_steps, action_steps=1, with_states=False)
        dataset = SegmentDataset(episodes, spec, self.normalizer).to(self.device)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset.sample_batch(rng.integers(len(dataset), size=train_cfg.batch_size))

        def loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            pred = self(batch[OBS_HISTORY].flatten(1), batch.get(TASK))  # (B, To*Do)
            value = F.mse_loss(pred, batch[ACTIONS][:, 0])
            return value, {"mse": value.detach()}

        return [Stage("bc", self.cfg.steps, self.net, sample, loss, lr=train_cfg.lr, batch_size=train_cfg.batch_size)]

    def make_policy(self, runtime: RuntimeOptions | None = None) -> "BCPolicy":
        from lwd.methods.bc.policy import BCPolicy

        return BCPolicy(self)

    def cost(self, runtime: RuntimeOptions | None = None, episode_steps: int | None = None) -> Cost:
        obs = torch.zeros(1, self.cfg.obs_steps * self.info.obs_dim)
        task = torch.zeros(1, dtype=torch.long) if self.num_task_inputs else None
        flops = count_flops(lambda: self(obs, task))
        return Cost(params_total=num_params(self), params_per_step=num_params(self), flops_policy_step=flops)
