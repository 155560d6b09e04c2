"""Data layer: episode store -> windows -> normalisation.

``Episodes`` holds demonstrations (zarr on disk, Diffusion Policy's layout), ``SegmentDataset``
cuts them into training windows described by a ``WindowSpec``, and ``MinMaxNormalizer`` maps
observations and actions to [-1, 1] with statistics that are saved alongside the model.
"""

from lwd.data import keys
from lwd.data.episodes import Episodes, concatenate
from lwd.data.errors import DatasetError
from lwd.data.normalize import MinMaxNormalizer
from lwd.data.segments import SegmentDataset, WindowSpec

__all__ = [
    "DatasetError",
    "Episodes",
    "MinMaxNormalizer",
    "SegmentDataset",
    "WindowSpec",
    "concatenate",
    "keys",
]
