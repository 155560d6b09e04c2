"""Named WARPD settings: LWD's presets (the same VAE, prior and budgets), with the world model on."""

from lwd.methods.lwd.presets import PRESETS as LWD_PRESETS

PRESETS = dict(LWD_PRESETS)
