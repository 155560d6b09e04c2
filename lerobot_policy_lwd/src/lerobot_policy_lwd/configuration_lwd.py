"""`--policy.type=lwd`: LeRobot's policy config for Latent Weight Diffusion.

LeRobot's part (features, normalisation, device, optimiser preset) follows LeRobot's conventions;
LWD's part is lwd's own typed config (`lwd.methods.lwd.LWDConfig`): every one of its settings is a
field here, generated from it, so names, types and defaults cannot drift. A setting left at None
takes the preset's value, else lwd's default; `__post_init__` writes the resolved values back, so
a saved config.json states every setting and reloads to the same model.

    lerobot-train --policy.type=lwd --policy.preset=pusht --policy.vae_steps=2000 --policy.prior_steps=1000 \
        --steps=3000 --dataset.repo_id=local/pusht --dataset.root=DIR

Training runs lwd's two stages one after the other inside LeRobot's single loop: steps
[0, vae_steps) train the VAE, the next prior_steps the latent prior, so `--steps` should be
vae_steps + prior_steps.

Timeline of one training sample (To = obs_steps, H = horizon), anchored at frame t:

    observation.state:  |t-To+1 ... t | t+1 ... t+H-1|   observation_delta_indices = [1-To, H)
                        |<- history ->|               the prior's condition (To frames)
                                      |<- states --->|  from t: the (state, action) segment
    action:                           | t  ...  t+H-1|   action_delta_indices = [0, H)
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import FeatureType, NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import LRSchedulerConfig

from lwd.config import TrainConfig
from lwd.methods.base import resolve_preset
from lwd.methods.lwd import LWD
from lwd.methods.lwd import LWDConfig as CoreConfig

LWD_SETTINGS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CoreConfig))
"""The names of lwd's LWD settings, each a field of the LeRobot config."""


def _shadowed_names() -> list[str]:
    """lwd settings whose names LeRobot's PreTrainedConfig already uses (a field, property or method).

    Such a setting would silently replace LeRobot's meaning (or, for a read-only property, fail
    inside draccus with "property ... has no setter" on every command), so the plugin refuses to
    load instead: rename the setting in lwd."""
    taken = set(dir(PreTrainedConfig)) | {f.name for f in dataclasses.fields(PreTrainedConfig)}
    return sorted(set(LWD_SETTINGS) & taken)


if _shadowed_names():
    raise ImportError(f"lerobot_policy_lwd: lwd's LWD settings {_shadowed_names()} have names LeRobot's "
                      "PreTrainedConfig already uses; rename them in lwd.methods.lwd.LWDConfig")


def _settings_fields() -> list[tuple[str, typing.Any, typing.Any]]:
    hints = typing.get_type_hints(CoreConfig)
    return [(name, typing.Optional[hints[name]], field(default=None)) for name in LWD_SETTINGS]


# A plain dataclass with lwd's settings as optional fields; LWDConfig below inherits them.
LWDSettings = dataclasses.make_dataclass("LWDSettings", _settings_fields())


@PreTrainedConfig.register_subclass("lwd")
@dataclass
class LWDConfig(PreTrainedConfig, LWDSettings):
    """LeRobot config of an LWD policy. LWD settings (horizon, latent_dim, vae_steps, ...) are lwd's."""

    preset: str = "pusht"
    """lwd's preset whose LWD settings fill the ones not given (`lwd info --presets lwd` lists them).
    'pusht' (state-conditioned, single task) rather than lwd's 'default' (task-conditioned):
    LeRobot's evaluation passes no task ids, so an LWD policy here is conditioned on states."""
    latent_stats_batches: int = 8
    """lwd fits the standardisation of latents on every segment's posterior when the prior stage
    starts; LeRobot's loop gives batches, not the dataset, so it is fitted on the posteriors of the
    first this many prior-stage batches (refitted on each of them, then fixed)."""
    action_horizon: int | None = None
    """Run time: steps between regenerations of the MLP (None: the training horizon; 0: once per episode)."""
    seed: int = 0
    """Run time: the first episode's sampling seed; each episode (each env of a batch) takes the next one,
    as `lwd eval` seeds episode i with seed + i."""

    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.MEAN_STD,
            "STATE": NormalizationMode.MIN_MAX,
            "ENV": NormalizationMode.MIN_MAX,
            "ACTION": NormalizationMode.MIN_MAX,
        }
    )

    # Optimiser: lwd's trainer (AdamW, cosine with warm-up per stage, EMA per stage, clip at 1).
    # None: the preset's training value, else lwd's TrainConfig default.
    optimizer_lr: float | None = None
    optimizer_betas: tuple[float, float] = TrainConfig.betas
    optimizer_weight_decay: float = TrainConfig.weight_decay
    optimizer_grad_clip_norm: float = 1.0
    warmup_steps: int = TrainConfig.warmup_steps
    ema_power: float = TrainConfig.ema_power
    ema_max_decay: float = TrainConfig.ema_max_decay

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            settings, train = resolve_preset(LWD, self.preset)
        except ValueError as err:  # LeRobot shows a config's ValueError as the reason it cannot build it
            raise ValueError(f"`preset`: {err}") from None
        for name in LWD_SETTINGS:
            if getattr(self, name) is None:
                value = settings.get(name, getattr(CoreConfig, name))
                setattr(self, name, tuple(value) if isinstance(value, list) else value)
            elif isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        if self.optimizer_lr is None:
            self.optimizer_lr = float(train.get("lr", TrainConfig.lr))
        try:
            self.core_config()
        except ValueError as err:
            raise ValueError(str(err).replace("LWDConfig.", "--policy.").replace("LWDConfig:", "--policy:")) from None
        if self.latent_stats_batches < 1:
            raise ValueError(f"`latent_stats_batches` must be >= 1, got {self.latent_stats_batches}")
        if self.action_horizon is not None and self.action_horizon < 0:
            raise ValueError(f"`action_horizon` must be >= 1 (or 0: once per episode), got {self.action_horizon}")
        if self.uses_task:
            raise ValueError(f"`condition`={self.condition!r}: LeRobot's evaluation passes no task ids, so the LWD "
                             "plugin conditions on states only; use condition='state' (preset 'pusht')")

    def core_config(self) -> CoreConfig:
        """lwd's own config of these settings (validated by lwd)."""
        return CoreConfig(**{name: getattr(self, name) for name in LWD_SETTINGS})

    @property
    def uses_task(self) -> bool:
        return "task" in self.condition

    # ------------------------------------------------------------------ LeRobot's contract
    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.obs_steps, self.horizon))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.horizon))

    @property
    def reward_delta_indices(self) -> None:
        return None

    @property
    def state_keys(self) -> list[str]:
        """The low-dimensional inputs, concatenated in this order into LWD's observation."""
        return [k for k, ft in (self.input_features or {}).items() if ft.type in (FeatureType.STATE, FeatureType.ENV)]

    def validate_features(self) -> None:
        if self.image_features:
            raise ValueError(f"LWD trains on low-dimensional states; the inputs include images {sorted(self.image_features)}. "
                             "Keep only state features (e.g. --policy.input_features or a state-only dataset)")
        if not self.state_keys:
            raise ValueError("LWD needs at least one state input (observation.state or observation.environment_state)")
        if self.action_feature is None:
            raise ValueError("LWD needs an 'action' output feature")

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=self.optimizer_lr, betas=self.optimizer_betas, weight_decay=self.optimizer_weight_decay,
                           grad_clip_norm=self.optimizer_grad_clip_norm)

    def get_scheduler_preset(self) -> "LWDStagesSchedulerConfig":
        return LWDStagesSchedulerConfig(vae_steps=self.vae_steps, prior_steps=self.prior_steps,
                                        num_warmup_steps=self.warmup_steps)


@LRSchedulerConfig.register_subclass("lwd_stages")
@dataclass
class LWDStagesSchedulerConfig(LRSchedulerConfig):
    """lwd's schedule in one LeRobot run: cosine with warm-up over the VAE stage, then again over the
    prior stage (each group keeps its own base lr: the VAE's optimizer_lr, the prior's prior_lr).
    Warm-up is min(num_warmup_steps, a tenth of the stage), as lwd's trainer has it."""

    vae_steps: int = 3000
    prior_steps: int = 3000
    num_warmup_steps: int | None = TrainConfig.warmup_steps

    def build(self, optimizer, num_training_steps: int):
        import torch
        from diffusers.optimization import get_cosine_schedule_with_warmup

        def stage_factor(steps: int):
            dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            warmup = min(self.num_warmup_steps or 0, max(steps // 10, 1))
            return get_cosine_schedule_with_warmup(dummy, warmup, steps).lr_lambdas[0]

        vae, prior = stage_factor(self.vae_steps), stage_factor(self.prior_steps)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: vae(step) if step < self.vae_steps else prior(step - self.vae_steps))
