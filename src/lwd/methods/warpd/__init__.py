"""WARPD: LWD with a learned world model assisting the decoder's training (model.py holds the
objective); the dynamics ensemble (world_model.py); settings (config.py) and presets (presets.py).
At run time it is LWD (`LWDPolicy`)."""

from lwd.methods.warpd.config import WARPDConfig
from lwd.methods.warpd.model import WARPD
from lwd.methods.warpd.world_model import DynamicsEnsemble

__all__ = ["WARPD", "WARPDConfig", "DynamicsEnsemble"]
