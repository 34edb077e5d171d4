"""Image data for minicnn: load folders, zips and .npz files, batch, augment, generate, download.

    ds = minicnn.data.load("tiny-imagenet-200.zip")        # Dataset: train / val / test Splits
    mean, std = minicnn.data.channel_stats(ds.train)        # float32 (C,), 0..1 scale
    for x, y in minicnn.data.batches(ds.train, 32, seed=epoch, normalize=(mean, std)):
        ...                                                 # x float32 (B, C, H, W), y int64 (B,)

Modules, one idea each: `images` (one file -> uint8 (C, H, W)), `sources` (folder or zip
listing), `layouts` (which layout, which files, which labels), `decode` (parallel decoding),
`cache` (on-disk .npz cache), `groups` (splits that keep a patient's images together), `npz`
(MedMNIST arrays), `loaders` (`load`), `dataset` (`Split`, `Dataset`), `batching`, `augment`,
`synthesis` (`synthetic`), `downloading` (`download`).
"""

from .augment import Augment
from .batching import batches, channel_stats, to_float
from .dataset import DataError, Dataset, Split, stratified_split
from .downloading import download
from .groups import DEFAULT_GROUP_BY, group_keys, group_split
from .images import load_image
from .loaders import load
from .synthesis import synthetic

__all__ = [
    "DEFAULT_GROUP_BY",
    "Augment",
    "DataError",
    "Dataset",
    "Split",
    "batches",
    "channel_stats",
    "download",
    "group_keys",
    "group_split",
    "load",
    "load_image",
    "stratified_split",
    "synthetic",
    "to_float",
]
