"""The fast engine: the same numbers as the layers in minicnn/layers/, computed faster.

Sequential uses it by default (`fast=True`); `model.fast = False` runs every layer's own
forward and backward instead. Adam and AdamW likewise take adam_step unless `fast=False`.
Everything here exists only for speed:

| step (file)            | equals (reference layers)             | faster by                |
| ---------------------- | ------------------------------------- | ------------------------ |
| ConvBlock (blocks.py)  | Conv2D -> ReLU [-> MaxPool2D]         | fused epilogue, chunks   |
| ConvBNBlock            | Conv2D(bias=False) -> BatchNorm2D     | BatchNorm folded (eval), |
|   (batchnorm.py)       |   [-> ReLU [-> MaxPool2D]]            | fused statistics (train) |
| FastConv (blocks.py)   | Conv2D                                | chunks, threads          |
| FastMaxPool (pool.py)  | MaxPool2D                             | threads                  |
| FastResidual           | Residual: branch + shortcut, then     | its layers as fast steps;|
|   (residual.py)        |   ReLU                                | sum + ReLU in one pass   |
| any other layer        | itself (its own forward and backward) |                          |
| adam_step (adam.py)    | the NumPy lines of Adam and AdamW     | one pass over memory     |
|                        |   (minicnn/optim.py)                  |                          |

Every convolution runs chunk by chunk: as im2col and one matrix product (conv.py), or for
3x3 stride-1 kernels as Winograd F(2x2, 3x3) (winograd.py; conv_matmul chooses). Chunking
keeps each chunk's buffers in cache; threads.py cuts the batch into one slice per
thread; per-thread scratch buffers are reused from call to call, and so, in evaluation,
are the prepared weights (folded BatchNorm, Winograd's U) while their sources are
unchanged (memo.py). A step owns all the state its backward needs; the layers it reads
keep nothing for it (their `cache` is cleared).
tests/test_fast.py holds every output and gradient of every step to the reference layers:
in float64 to a relative error of 1e-12, in float32 within rounding, with chunk
boundaries inside the batch, on im2col and on Winograd, at 1 and 2 threads, and over
SGD and Adam steps of the three paper networks; tests/test_optim.py holds adam_step to
Adam's NumPy lines.
"""

from ..layers import BatchNorm2D, Conv2D, MaxPool2D, ReLU, Residual
from . import threads
from .batchnorm import ConvBNBlock
from .blocks import ConvBlock, FastConv
from .memo import layers_key
from .pool import FastMaxPool
from .residual import FastResidual

__all__ = ["ConvBNBlock", "ConvBlock", "FastConv", "FastMaxPool", "layers_key", "plan", "threads"]


def plan(layers):
    """Group layers into the fast engine's steps: a list of (index of first layer, step).

    Conv2D, ReLU [, MaxPool2D] in a row become a ConvBlock; Conv2D(bias=False),
    BatchNorm2D [, ReLU [, MaxPool2D]] a ConvBNBlock; a Conv2D or a MaxPool2D on its own its
    fast twin; a Residual a FastResidual, its branch and shortcut planned alike; every other
    layer is its own step. A step that is not the layer itself lists the layers it
    computes in `step.layers`.
    """
    steps, i = [], 0
    while i < len(layers):
        layer = layers[i]
        nxt, after, last = (layers[i + j] if i + j < len(layers) else None for j in (1, 2, 3))
        if type(layer) is Conv2D and type(nxt) is ReLU:
            step = ConvBlock(layer, nxt, after if type(after) is MaxPool2D else None)
        elif type(layer) is Conv2D and layer.b is None and type(nxt) is BatchNorm2D:
            if type(after) is ReLU:
                step = ConvBNBlock(layer, nxt, after, last if type(last) is MaxPool2D else None)
            else:  # BatchNorm alone after it: a branch's last, a projection shortcut
                step = ConvBNBlock(layer, nxt)
        elif type(layer) is Conv2D:
            step = FastConv(layer)
        elif type(layer) is MaxPool2D:
            step = FastMaxPool(layer)
        elif type(layer) is Residual:  # its branch and shortcut planned the same way
            step = FastResidual(layer, plan)
        else:
            step = layer
        steps.append((i, step))
        i += len(step.layers) if step is not layer else 1
    return steps
