"""Plain behaviour cloning with one MLP: the baseline of the same per-step size as LWD's
generated policy. Settings (config.py), model (model.py), runtime (policy.py), presets."""

from lwd.methods.bc.config import BCConfig
from lwd.methods.bc.model import BC
from lwd.methods.bc.policy import BCPolicy

__all__ = ["BC", "BCConfig", "BCPolicy"]
