"""The fast engine: the same numbers as the layers in minicnn/layers/, computed faster.

Sequential uses it by default (`fast=True`); `model.fast = False` runs every layer's own
forward and backward instead. Everything here exists only for speed:

| step (file)            | equals (reference layers)             | faster by                |
| ---------------------- | ------------------------------------- | ------------------------ |
| ConvBlock (blocks.py)  | Conv2D -> ReLU [-> MaxPool2D]         | fused epilogue, chunks   |
| FastConv (conv.py)     | Conv2D                                | chunked im2col, threads  |
| FastMaxPool (pool.py)  | MaxPool2D                             | threads                  |
| any other layer        | itself (its own forward and backward) |                          |

Chunking keeps each im2col buffer in cache; threads.py cuts the batch into one slice per
thread; per-thread scratch buffers are reused from call to call. A step owns all the state
its backward needs; the layers it reads keep nothing for it (their `cache` is cleared).
tests/test_fast.py holds every output and gradient of every step to the reference layers:
in float64 to a relative error of 1e-12, in float32 within rounding, with chunk
boundaries inside the batch, at 1 and 2 threads, and over Adam steps of both paper networks.
"""

from ..layers import Conv2D, MaxPool2D, ReLU
from . import threads
from .blocks import ConvBlock
from .conv import FastConv
from .pool import FastMaxPool

__all__ = ["ConvBlock", "FastConv", "FastMaxPool", "plan", "threads"]


def plan(layers):
    """Group layers into the fast engine's steps: a list of (index of first layer, step).

    Conv2D, ReLU [, MaxPool2D] in a row become a ConvBlock; a Conv2D or a MaxPool2D on its
    own its fast twin; every other layer is its own step. A step that is not the layer
    itself lists the layers it computes in `step.layers`.
    """
    steps, i = [], 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is Conv2D and type(nxt) is ReLU:
            after = layers[i + 2] if i + 2 < len(layers) else None
            step = ConvBlock(layer, nxt, after if type(after) is MaxPool2D else None)
        elif type(layer) is Conv2D:
            step = FastConv(layer)
        elif type(layer) is MaxPool2D:
            step = FastMaxPool(layer)
        else:
            step = layer
        steps.append((i, step))
        i += len(step.layers) if step is not layer else 1
    return steps
