"""Settings of the Diffusion Policy baseline; the defaults are the reference low-dim config."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lwd.config import ADDED_LATER
from lwd.methods.diffusion import SAMPLERS
from lwd.methods.dp.unet1d import min_horizon_multiple, round_up_horizon

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample")


@dataclass(frozen=True)
class DPConfig:
    """Diffusion Policy settings; the defaults are the reference low-dim ("paper") config.

    Horizon vocabulary (To = obs_steps, Ta = action_steps, T = horizon)::

        step:      t-1   t    t+1  ...  t+Ta-1  ...  t+T-To
        obs:      [ To obs ]                            condition (global, FiLM)
        sample:   [<------------- T actions ------------>]  denoised at once
        executed:       [<----- Ta ----->]              indices [To-1, To-1+Ta) of the sample
    """

    horizon: int = 16
    """T: actions predicted (denoised) at once; a multiple of 2**(len(down_dims)-1)."""
    obs_steps: int = 2
    """To: observations the policy is conditioned on (the last one is the current step)."""
    action_steps: int = 8
    """Ta: actions executed before re-planning (runtime default; `make_policy` may change it)."""
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    diffusion_step_embed_dim: int = 256
    n_groups: int = 8
    cond_predict_scale: bool = True
    """FiLM with per-channel scale and bias (True) or bias only."""
    task_embed_dim: int = 64
    """Size of the learned task embedding appended to the condition (multitask data only)."""
    num_train_timesteps: int = 100
    num_inference_steps: int = 100
    """Denoising steps at run time for `sampler` (ddpm: 100 = the full chain, as the reference)."""
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    """Clip the predicted clean sample to [-1, 1] (the normalised action box) at every step."""
    sampler: str = "ddpm"
    """Default run-time sampler. 'ddim' (fewer steps) is a different operating point: results
    with it are reported under their own sampler/steps, never as the ddpm baseline."""
    steps: int = 20000
    """Training steps (the learning rate is TrainConfig.lr, as for every method)."""
    # Image observations (used only when the data has camera frames; see model.py):
    crop_shape: tuple[int, int] = field(default=(84, 84), metadata=ADDED_LATER)
    """Crop of every frame before the encoder (random in training, central in evaluation): the
    reference's 84 x 84 for PushT's 96 px frames; robomimic's 84 px frames take 76 x 76."""
    image_width: int = field(default=64, metadata=ADDED_LATER)
    """Channels of the ResNet-18's first stage (64: the reference; later stages double it)."""
    image_keypoints: int = field(default=32, metadata=ADDED_LATER)
    """Spatial-softmax keypoints per camera."""
    camera_features: int = field(default=64, metadata=ADDED_LATER)
    """Features per camera and step after the encoder's linear layer."""
    image_pool: int = field(default=1, metadata=ADDED_LATER)
    """Average-pool each frame over pool x pool pixels before the crop (crop_shape is then in pooled
    pixels; 1: full resolution, as the reference). DP runs its encoders once per plan, so pooling
    matters less to its cost than to methods that encode every step."""

    def __post_init__(self) -> None:
        for name in ("horizon", "obs_steps", "action_steps", "kernel_size", "diffusion_step_embed_dim", "n_groups",
                     "task_embed_dim", "num_train_timesteps", "num_inference_steps", "steps"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DPConfig.{name} must be an int >= 1, got {value!r}")
        if not self.down_dims or any(not isinstance(d, (int, np.integer)) or d < 1 for d in self.down_dims):
            raise ValueError(
                f"DPConfig.down_dims must be a non-empty tuple of positive ints, e.g. (256, 512, 1024); got {self.down_dims!r}"
            )
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ValueError(
                f"DPConfig.down_dims {tuple(self.down_dims)}: widths {bad} are not multiples of "
                f"n_groups={self.n_groups} (GroupNorm); change them or n_groups"
            )
        if self.kernel_size % 2 != 1:
            raise ValueError(
                f"DPConfig.kernel_size must be odd so 'same' padding keeps T, got {self.kernel_size}; use {self.kernel_size + 1}"
            )
        if self.diffusion_step_embed_dim < 4 or self.diffusion_step_embed_dim % 2:
            raise ValueError(f"DPConfig.diffusion_step_embed_dim must be even and >= 4, got {self.diffusion_step_embed_dim}")
        multiple = min_horizon_multiple(self.down_dims)
        if self.horizon % multiple:
            raise ValueError(
                f"DPConfig.horizon={self.horizon} must be a multiple of {multiple} (= 2**(len(down_dims)-1) for "
                f"down_dims={tuple(self.down_dims)}); use horizon={round_up_horizon(self.horizon, self.down_dims)} "
                "(lwd.methods.dp.unet1d.round_up_horizon)"
            )
        if self.obs_steps - 1 + self.action_steps > self.horizon:
            need = self.obs_steps - 1 + self.action_steps
            raise ValueError(
                f"DPConfig: executed actions [To-1, To-1+Ta) = [{self.obs_steps - 1}, {need}) do not fit in horizon "
                f"T={self.horizon}; need action_steps + obs_steps - 1 <= horizon: lower action_steps or use "
                f"horizon={round_up_horizon(need, self.down_dims)}"
            )
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"DPConfig.num_inference_steps ({self.num_inference_steps}) cannot exceed "
                f"num_train_timesteps ({self.num_train_timesteps}); lower it or use more train timesteps"
            )
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"DPConfig.beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"DPConfig.prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"DPConfig.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if len(self.crop_shape) != 2 or min(self.crop_shape) < 1:
            raise ValueError(f"DPConfig.crop_shape must be [height, width] in pixels, e.g. [84, 84]; got {self.crop_shape!r}")
        if self.image_width < 16 or self.image_width % 16:
            raise ValueError(f"DPConfig.image_width must be a multiple of 16 (GroupNorm groups of 16 channels), got {self.image_width}")
        for name in ("image_keypoints", "camera_features", "image_pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"DPConfig.{name} must be >= 1, got {getattr(self, name)}")
