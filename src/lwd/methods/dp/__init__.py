"""Diffusion Policy (Chi et al. 2023), the CNN U-Net baseline: settings (config.py), model and
training (model.py), receding-horizon runtime (policy.py), presets (presets.py)."""

from lwd.methods.dp.config import DPConfig
from lwd.methods.dp.model import DiffusionPolicy
from lwd.methods.dp.policy import DPPolicy

__all__ = ["DPConfig", "DPPolicy", "DiffusionPolicy"]
