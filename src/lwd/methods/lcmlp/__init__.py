"""The latent-conditioned MLP baseline (`lwd train lcmlp`): LWD without the hypernetwork."""

from lwd.methods.lcmlp.decoder import LatentConditionedDecoder
from lwd.methods.lcmlp.model import LatentConditionedMLP

__all__ = ["LatentConditionedDecoder", "LatentConditionedMLP"]
