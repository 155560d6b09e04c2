"""Is the hypernetwork necessary? The latent-conditioned MLP pi(s, z): LWD's encoder, latent prior,
data, training and per-step size, with the hypernetwork replaced by z as an input of the MLP
(see decoder.py for why that is a decoder that only shifts the first layer's bias).

Everything else is inherited from LWD: the VAE and prior stages, the runtime (a new z every H
steps, the MLP at every step), export and costs. Settings are LWD's (`hyper_*` and `chunk_*` are
unused)."""

from __future__ import annotations

from lwd.config import DataInfo
from lwd.data import MinMaxNormalizer
from lwd.methods.base import register_method
from lwd.methods.lcmlp.decoder import LatentConditionedDecoder
from lwd.methods.lwd.config import LWDConfig
from lwd.methods.lwd.model import LWD
from lwd.methods.lwd.presets import PRESETS


@register_method
class LatentConditionedMLP(LWD):
    name = "lcmlp"
    config_class = LWDConfig
    presets = PRESETS

    def __init__(self, cfg: LWDConfig, info: DataInfo, normalizer: MinMaxNormalizer) -> None:
        super().__init__(cfg, info, normalizer)
        self.vae.decoder = LatentConditionedDecoder(self.target, cfg.latent_dim)
