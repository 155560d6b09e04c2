"""Behaviour cloning with one MLP: the last To obs, stacked (+ task one-hot for multitask data) -> action.

The baseline every generative method must beat or match: it shows what a plain policy of the
same per-step size as LWD's generated MLP achieves on the same demonstrations.

On camera frames it is BC on features, the third arm of an image study beside LWD's vision variant
and Diffusion Policy: the MLP reads the last To step vectors [obs, features] of a frozen encoder
(`lwd.methods.frozen_vision`: loaded with `encoder_from`, or trained first by behaviour cloning in
stage "encoder", with LWD's settings and seed the very encoder LWD freezes), so it differs from LWD
only in the policy on top: one MLP for every state instead of one generated every H steps. Frames
are embedded once; the encoder runs at every control step and is costed there.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lwd.config import DataInfo, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer, SegmentDataset, WindowSpec
from lwd.data.keys import ACTIONS, OBS, OBS_HISTORY, TASK
from lwd.flops import count_flops, num_params
from lwd.methods.base import Cost, Method, RuntimeOptions, Stage, register_method
from lwd.methods.bc.config import BCConfig
from lwd.methods.bc.presets import PRESETS
from lwd.methods.frozen_vision import FrozenVision, lazy

_ACT = {"relu": nn.ReLU, "mish": nn.Mish, "tanh": nn.Tanh}


@register_method
class BC(Method):
    name = "bc"
    config_class = BCConfig
    presets = PRESETS
    reads_images = True
    cfg: BCConfig

    def __init__(self, cfg: BCConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        if cfg.activation not in _ACT:
            raise ValueError(f"BCConfig.activation must be one of {sorted(_ACT)}, got {cfg.activation!r}")
        super().__init__(cfg, info, normalizer)
        self.num_task_inputs = info.task_inputs
        self.step_dim = info.obs_dim + (len(info.images) * cfg.camera_features if info.images else 0)
        """Size of a step vector: the observation, plus the cameras' features on image data."""
        sizes = [cfg.obs_steps * self.step_dim + self.num_task_inputs, *cfg.hidden]
        layers: list[nn.Module] = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(i, o), _ACT[cfg.activation]()]
        layers.append(nn.Linear(sizes[-1], info.action_dim))
        self.net = nn.Sequential(*layers)
        # built last, so a state model keeps its initial weights
        self.vision = FrozenVision(info.images, cfg, info.obs_dim, info.action_dim) if info.images else None

    @property
    def step_normalizer(self) -> MinMaxNormalizer:
        """The normaliser of step vectors (`normalizer` itself on state data; see LWD's)."""
        return self.normalizer if self.vision is None else self.vision.step_normalizer(self.normalizer)

    def forward(self, obs: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """obs (B, To*Ds) normalised step vectors (oldest first), task (B,) -> normalised action (B, Da)."""
        if self.num_task_inputs:
            if task is None:
                raise ValueError("this BC model is multitask: pass task ids")
            obs = torch.cat([obs, F.one_hot(task, self.num_task_inputs).float()], dim=-1)
        return self.net(obs)

    def stages(self, train_cfg: TrainConfig, episodes: Episodes) -> list[Stage]:
        spec = WindowSpec(obs_steps=self.cfg.obs_steps, action_steps=1, with_states=False)
        checked = SegmentDataset(episodes, spec, self.normalizer)  # on the low-dim data: checked before anything trains
        encoder: list[Stage] = []
        if self.vision is None:
            dataset = lazy(lambda: checked.to(self.device))
        else:
            vision = self.vision
            encoder = vision.stages(train_cfg, episodes, self.normalizer)

            def build() -> SegmentDataset:  # once the encoder is frozen: the windows hold step vectors
                vision.freeze()
                embedded = vision.feature_episodes(episodes)
                vision.fit_feature_stats(embedded.data[OBS])
                return SegmentDataset(embedded, spec, self.step_normalizer).to(self.device)

            dataset = lazy(build)

        def sample(rng: np.random.Generator) -> dict[str, torch.Tensor]:
            return dataset().sample_batch(rng.integers(len(dataset()), size=train_cfg.batch_size))

        def loss(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            pred = self(batch[OBS_HISTORY].flatten(1), batch.get(TASK))  # (B, To*Do)
            value = F.mse_loss(pred, batch[ACTIONS][:, 0])
            return value, {"mse": value.detach()}

        def build_now() -> None:
            dataset()

        return [*encoder, Stage("bc", self.cfg.steps, self.net, sample, loss, lr=train_cfg.lr, batch_size=train_cfg.batch_size,
                                prepare=build_now)]

    def make_policy(self, runtime: RuntimeOptions | None = None) -> "BCPolicy":
        from lwd.methods.bc.policy import BCPolicy

        return BCPolicy(self)

    def cost(self, runtime: RuntimeOptions | None = None, episode_steps: int | None = None) -> Cost:
        """One step: the MLP (on image data, after the frozen encoder on that step's frames)."""
        obs = torch.zeros(1, self.cfg.obs_steps * self.step_dim)
        task = torch.zeros(1, dtype=torch.long) if self.num_task_inputs else None
        flops = count_flops(lambda: self(obs, task))
        if self.vision is None:
            return Cost(params_total=num_params(self), params_per_step=num_params(self), flops_policy_step=flops)
        encoder_flops, encoder_params = self.vision.step_flops(), self.vision.encoder_params()
        return Cost(params_total=num_params(self), params_per_step=num_params(self.net) + encoder_params,
                    flops_policy_step=flops + encoder_flops,
                    details={"flops_mlp": flops, "flops_image_encoders": encoder_flops, "params_mlp": num_params(self.net),
                             "params_image_encoders": encoder_params})
