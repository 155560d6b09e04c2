"""Latent Weight Diffusion: a VAE whose hypernetwork decoder emits the weights of a small MLP
policy, and a latent diffusion prior over its latents (model.py); the runtime that regenerates
the MLP every H steps (policy.py); settings (config.py) and presets (presets.py)."""

from lwd.methods.lwd.config import LWDConfig
from lwd.methods.lwd.model import LWD, policy_inputs
from lwd.methods.lwd.policy import LWDPolicy

__all__ = ["LWD", "LWDConfig", "LWDPolicy", "policy_inputs"]
