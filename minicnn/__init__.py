"""minicnn: a convolutional neural network engine from scratch in NumPy and Numba.

Read it in the order of docs/learn.md: parameter.py, layers/ (the reference engine: one
file per concept, forward and backward side by side), losses.py, sequential.py, optim.py,
models.py, gradcheck.py, training/ (loop.py first, then each callback); then fast/, the fast
engine, which computes the same numbers faster. The Numba hot loops are in `kernels/`,
installed as `minicnn.kernels`. Saving is saving/, the command line cli/, ONNX onnx/.
"""

from . import (
    data,
    explain,
    fast,
    gradcheck,
    io,
    kernels,
    metrics,
    models,
    onnx,
    saving,
    schedules,
    train,
    training,
)
from .fast import threads
from .kernels import kernels_compiled
from .layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    MaxPool2D,
    ReLU,
    Residual,
    ShapeError,
    Sigmoid,
    Softmax,
)
from .losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from .optim import SGD, Adam, AdamW
from .parameter import Parameter
from .saving import load, save
from .sequential import Sequential
from .training import evaluate, fit
from .transfer import transfer
from .version import __version__  # noqa: F401 (minicnn.__version__)

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "BinaryCrossEntropy",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2D",
    "Layer",
    "MaxPool2D",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "data",
    "evaluate",
    "explain",
    "fast",
    "fit",
    "gradcheck",
    "io",
    "kernels",
    "kernels_compiled",
    "load",
    "metrics",
    "models",
    "onnx",
    "save",
    "saving",
    "schedules",
    "threads",
    "train",
    "training",
    "transfer",
]
