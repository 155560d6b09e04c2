"""Named BC settings (`lwd train bc --preset NAME`)."""

from lwd.methods.base import Preset

PRESETS: dict[str, Preset] = {
    "default": Preset(train={"batch_size": 256}),
    "mt10-quick": Preset(method={"steps": 10000}, train={"lr": 1e-3}, extends="default"),
    "mt10": Preset(method={"steps": 80000}, extends="mt10-quick"),
    # BC on features for PushT from camera frames: the last 2 step vectors (as LWD's pusht-image MLP
    # sees them) of the encoder LWD's pusht-image freezes (the same image settings; with the same
    # seed, bit for bit the same encoder).
    "pusht-image": Preset(method={"obs_steps": 2, "image_width": 16, "image_pool": 2, "crop_shape": (42, 42)},
                          extends="default"),
}
