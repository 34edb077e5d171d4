"""The layers of a CNN, one class per concept, each with forward and backward together.

LAYER_TYPES maps each layer class this package exports to its name: the table a model
file's record is read against (minicnn/saving/), so a new layer needs only its import here.
"""

from .activations import ReLU, Sigmoid, Softmax, sigmoid, softmax
from .avgpool import AvgPool2D, GlobalAvgPool2D
from .base import Layer, ShapeError
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .norm import BatchNorm1D, BatchNorm2D
from .pool import MaxPool2D
from .residual import Residual

__all__ = [
    "LAYER_TYPES",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "MaxPool2D",
    "ReLU",
    "Residual",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "sigmoid",
    "softmax",
]

LAYER_TYPES = dict(
    sorted(
        (obj.__name__, obj)
        for obj in list(globals().values())
        if isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer
    )
)
"""{"Conv2D": Conv2D, ...}: every Layer subclass imported above, by its class name."""
