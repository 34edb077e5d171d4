"""The layers of a CNN, one class per concept, each with forward and backward together."""

from .activations import ReLU, Sigmoid, Softmax, sigmoid, softmax
from .base import Layer, ShapeError
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout
from .pool import MaxPool2D

__all__ = [
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "ReLU",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "sigmoid",
    "softmax",
]
