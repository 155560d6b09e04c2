"""Typed configs: validated at construction, saved as JSON next to every checkpoint.

Each config is a plain dataclass. `from_dict` refuses unknown keys (so a typo in a preset or a
hand-edited config.json is an error, not a silently ignored setting) and `__post_init__` checks
values with messages that say what to change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {unknown}; known keys: {sorted(known)}")
    # JSON has no tuples: turn lists back into tuples where the field's default is one.
    kwargs = {
        name: tuple(value) if isinstance(value, list) and isinstance(known[name].default, tuple) else value
        for name, value in data.items()
    }
    return cls(**kwargs)  # type: ignore[call-arg]


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """`key=value` strings (from `--set`) -> a new config; values parsed as JSON where possible."""
    import json

    changes: dict[str, Any] = {}
    names = {f.name for f in fields(cfg)}  # type: ignore[arg-type]
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        if key not in names:
            raise ValueError(f"unknown setting {key!r}; known: {sorted(names)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def _positive(cls_name: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{cls_name}.{name} must be > 0, got {value}")


@dataclass(frozen=True)
class TrainConfig:
    """How to optimise (shared by every method). Step counts are per training stage."""

    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    ema_power: float = 0.75
    ema_max_decay: float = 0.999
    checkpoint_every: int = 1000
    val_fraction: float = 0.0
    num_threads: int = 0
    """torch threads; 0 keeps torch's default."""
    short_episodes: str = "pad"
    """Episodes shorter than a method's window of H actions: "pad" (masked, as Diffusion Policy's
    sampler pads; real data such as PushT has episodes shorter than long horizons), "drop", or "error"."""

    def __post_init__(self) -> None:
        _positive("TrainConfig", batch_size=self.batch_size, lr=self.lr, checkpoint_every=self.checkpoint_every)
        if self.short_episodes not in ("pad", "drop", "error"):
            raise ValueError(f"TrainConfig.short_episodes must be pad, drop or error, got {self.short_episodes!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if not 0.0 <= self.ema_max_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_max_decay must be in [0, 1), got {self.ema_max_decay}")


@dataclass(frozen=True)
class LWDConfig:
    """Latent Weight Diffusion: VAE with a hypernetwork decoder, then a latent diffusion prior.

    Timeline of one segment (To = obs_steps, H = horizon), anchored at step t:

        obs:      |t-1| t |                     condition of the prior (state-conditioned)
        segment:      | t | t+1 | ... | t+H-1|  (state, action) pairs the encoder sees and the
                                                 decoded policy must reproduce; at run time the
                                                 policy is regenerated every H steps
    """

    horizon: int = 32
    obs_steps: int = 2
    condition: str = "task"
    """'task' (task id only), 'state' (observation history) or 'task+state'."""
    latent_dim: int = 64
    kl_weight: float = 1e-4
    policy_hidden: tuple[int, ...] = (128, 128)
    policy_activation: str = "relu"
    policy_obs_steps: int = 1
    """Observations the generated MLP sees at each step, stacked oldest first (<= obs_steps).
    1: pi(s_t); 2: pi(s_{t-1}, s_t), which carries velocity (PushT's PD-driven agent lags its
    target, so where it is heading is not in one observation)."""
    chunk_size: int = 2048
    chunk_emb_dim: int = 64
    hyper_hidden: tuple[int, ...] = (256,)
    encoder_dim: int = 64
    encoder_layers: int = 1
    encoder_heads: int = 4
    denoiser_width: int = 256
    denoiser_blocks: int = 4
    diffusion_train_steps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    sampler: str = "ddim"
    inference_steps: int = 10
    clip_sample_range: float = 3.0
    """Clip the predicted clean latent to +-this many standard deviations while sampling (0: off)."""
    vae_steps: int = 3000
    prior_steps: int = 3000
    prior_lr: float = 3e-4
    prior_batch_size: int = 256
    segment_starts: str = "any"
    """'any': segments start at every step; 'episode': only at episode starts, so each latent
    describes a whole demonstration (with horizon >= episode length: a policy for the episode)."""
    latent_stride: int = 1
    """Use every k-th segment start when encoding latents for the prior (speed on big datasets)."""

    def __post_init__(self) -> None:
        _positive("LWDConfig", horizon=self.horizon, obs_steps=self.obs_steps, latent_dim=self.latent_dim,
                  chunk_size=self.chunk_size, inference_steps=self.inference_steps, latent_stride=self.latent_stride)
        if not 1 <= self.policy_obs_steps <= self.obs_steps:
            raise ValueError(f"LWDConfig.policy_obs_steps must be in [1, obs_steps={self.obs_steps}], got {self.policy_obs_steps}; "
                             "raise obs_steps too")
        if self.condition not in ("task", "state", "task+state"):
            raise ValueError(f"LWDConfig.condition must be 'task', 'state' or 'task+state', got {self.condition!r}")
        if self.segment_starts not in ("any", "episode"):
            raise ValueError(f"LWDConfig.segment_starts must be 'any' or 'episode', got {self.segment_starts!r}")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"LWDConfig.sampler must be 'ddim' or 'ddpm', got {self.sampler!r}")
        if self.kl_weight < 0:
            raise ValueError(f"LWDConfig.kl_weight must be >= 0, got {self.kl_weight}")
        if self.encoder_dim % self.encoder_heads:
            raise ValueError(f"LWDConfig.encoder_dim ({self.encoder_dim}) must be divisible by encoder_heads ({self.encoder_heads})")
        if self.sampler == "ddpm" and self.inference_steps != self.diffusion_train_steps:
            raise ValueError("LWDConfig: the ddpm sampler runs all diffusion_train_steps; set inference_steps equal to it or use ddim")

    @property
    def uses_task(self) -> bool:
        return "task" in self.condition

    @property
    def uses_state(self) -> bool:
        return "state" in self.condition


@dataclass(frozen=True)
class BCConfig:
    """Plain behaviour cloning: one MLP obs (+ task one-hot) -> action. The sanity baseline."""

    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    steps: int = 20000
    obs_steps: int = 1
    """Observations the MLP sees, stacked (To). 1 = the current one; 2 also carries velocity,
    as Diffusion Policy's To=2 condition does."""

    def __post_init__(self) -> None:
        _positive("BCConfig", steps=self.steps, obs_steps=self.obs_steps)
        if not self.hidden:
            raise ValueError("BCConfig.hidden needs at least one layer")


@dataclass(frozen=True)
class DataInfo:
    """What the model was trained on; checked against environments and datasets at load time."""

    obs_dim: int
    action_dim: int
    tasks: tuple[str, ...] = ()
    suite: str = ""
    dataset: str = ""
    num_episodes: int = 0

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a trained method: written to config.json."""

    method: str
    method_config: dict[str, Any]
    train: dict[str, Any]
    data: dict[str, Any]
    preset: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
