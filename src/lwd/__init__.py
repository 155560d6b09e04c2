"""lwd: Latent Weight Diffusion.

Imitation learning that generates the *weights* of a small closed-loop policy (a hypernetwork
decodes a latent into an MLP) instead of a trajectory of actions. See README.md.
"""

__version__ = "0.1.0"
