"""Named BC settings (`lwd train bc --preset NAME`)."""

from lwd.methods.base import Preset

PRESETS: dict[str, Preset] = {
    "default": Preset(train={"batch_size": 256}),
    "mt10-quick": Preset(method={"steps": 10000}, train={"lr": 1e-3}, extends="default"),
    "mt10": Preset(method={"steps": 80000}, extends="mt10-quick"),
}
