"""Settings of plain behaviour cloning."""

from __future__ import annotations

from dataclasses import dataclass, field

from lwd.config import ADDED_LATER, check_positive
from lwd.methods.frozen_vision import check_image_settings


@dataclass(frozen=True)
class BCConfig:
    """Plain behaviour cloning: one MLP obs (+ task one-hot) -> action. The sanity baseline.

    On camera frames it is BC on features: the MLP reads step vectors [obs, features] of the same
    frozen encoder LWD uses (the image settings below are LWD's, with the same meaning)."""

    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    steps: int = 20000
    obs_steps: int = 1
    """Observations the MLP sees, stacked (To). 1 = the current one; 2 also carries velocity,
    as Diffusion Policy's To=2 condition does."""
    # Camera frames (used only when the training data has them; lwd.methods.frozen_vision):
    encoder_from: str = field(default="", metadata=ADDED_LATER)
    """Where the frozen image encoder comes from: "" trains it in this run first, by behaviour cloning
    (stage "encoder"; with LWD's settings and seed, bit for bit LWD's encoder); a run directory lends
    its camera encoders; a .safetensors file holds your own (ImageEncoder's layout)."""
    encoder_steps: int = field(default=2000, metadata=ADDED_LATER)
    """Steps of the "encoder" stage (only when encoder_from is "")."""
    encoder_batch_size: int = field(default=32, metadata=ADDED_LATER)
    """Frames per step of the "encoder" stage."""
    encoder_lr: float = field(default=3e-4, metadata=ADDED_LATER)
    """Peak learning rate of the "encoder" stage."""
    crop_shape: tuple[int, int] = field(default=(84, 84), metadata=ADDED_LATER)
    """Crop of every frame before the encoder (random while the encoder trains, central after)."""
    image_width: int = field(default=64, metadata=ADDED_LATER)
    """Channels of the encoder's first ResNet-18 stage (64: Diffusion Policy's)."""
    image_keypoints: int = field(default=32, metadata=ADDED_LATER)
    """Spatial-softmax keypoints per camera."""
    camera_features: int = field(default=64, metadata=ADDED_LATER)
    """Features per camera and step."""
    image_pool: int = field(default=1, metadata=ADDED_LATER)
    """Average-pool each frame over pool x pool pixels before the crop (crop_shape is then in pooled
    pixels; 1: full resolution, as Diffusion Policy). The frozen encoder runs at every control step,
    as LWD's does; the same setting freezes the same encoder."""

    def __post_init__(self) -> None:
        check_positive("BCConfig", steps=self.steps, obs_steps=self.obs_steps)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"BCConfig.hidden needs at least one positive width, got {self.hidden}")
        check_image_settings("BCConfig", self)
