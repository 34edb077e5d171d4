"""The layers of a CNN, one class per concept, each with forward and backward together."""

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
