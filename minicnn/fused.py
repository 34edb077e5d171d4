"""Conv2D -> ReLU [-> MaxPool2D] run as one step: an execution detail of Sequential.

The three layers stay separate objects (a model still iterates as Conv2D, ReLU,
MaxPool2D) and each still works on its own. When Sequential meets them in a row it runs
them as one ConvBlock instead: the convolution's matrix product Y (F, N*H*W) goes straight
into one Numba kernel that adds the bias, applies ReLU, pools and writes NCHW, and the
backward pass mirrors it. This saves two passes over the largest activations and a
transpose each way. The result is the same as running the layers one by one (checked in
tests/test_fused.py); `Sequential(..., fuse=False)` runs them one by one.
"""

import numpy as np

from . import threads
from ._kernels import kernels
from .layers import Conv2D, MaxPool2D, ReLU


class ConvBlock:
    """Conv2D + ReLU, optionally + MaxPool2D, forward and backward in fused kernels.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), H' = conv then pool output size.
    """

    def __init__(self, conv, relu, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = [conv, relu] + ([pool] if pool is not None else [])

    def forward(self, x, training=False):
        conv, pool = self.conv, self.pool
        F = conv.out_channels
        Y = conv.matmul_forward(x)  # (F, N*H*W)
        N, H, W = conv._out_nhw
        Y4 = Y.reshape(F, N, H, W)
        b = conv.b.data.astype(Y.dtype, copy=False)
        # Each slice a:c of the batch reads Y4[:, a:c] and writes out[a:c]: no overlap.
        if pool is None:
            out = np.empty((N, F, H, W), dtype=Y.dtype)
            threads.parallel_for(
                lambda a, c: kernels.fused.bias_relu_forward(Y4[:, a:c], b, out[a:c]), N
            )
            self._argmax = None
        else:
            _, H_out, W_out = pool.output_shape((F, H, W))
            out = np.empty((N, F, H_out, W_out), dtype=Y.dtype)
            self._argmax = am = np.empty(out.shape, dtype=np.int32)
            k, s = pool.pool_size, pool.stride
            threads.parallel_for(
                lambda a, c: kernels.fused.bias_relu_pool_forward(
                    Y4[:, a:c], b, k, s, out[a:c], am[a:c]
                ),
                N,
            )
        self._out = out
        self._Y_shape = Y4.shape
        return out

    def backward(self, dout, input_grad=True):
        conv = self.conv
        F, N, H, W = self._Y_shape
        dout = np.ascontiguousarray(dout)
        dY = np.empty(self._Y_shape, dtype=dout.dtype)
        db_partial = np.empty((N, F), dtype=dout.dtype)
        out, am = self._out, self._argmax
        if self.pool is None:
            threads.parallel_for(
                lambda a, c: kernels.fused.bias_relu_backward(
                    dout[a:c], out[a:c], dY[:, a:c], db_partial[a:c]
                ),
                N,
            )
        else:
            threads.parallel_for(
                lambda a, c: kernels.fused.bias_relu_pool_backward(
                    dout[a:c], out[a:c], am[a:c], dY[:, a:c], db_partial[a:c]
                ),
                N,
            )
        conv.b.grad = db_partial.sum(axis=0).astype(conv.b.data.dtype, copy=False)
        return conv.matmul_backward(dY.reshape(F, -1), input_grad)


def plan(layers):
    """Group layers into steps: ConvBlocks where Conv2D, ReLU [, MaxPool2D] follow each other.

    Returns a list of (index of the step's first layer, step).
    """
    steps, i = [], 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if type(layer) is Conv2D and type(nxt) is ReLU:
            after = layers[i + 2] if i + 2 < len(layers) else None
            pool = after if type(after) is MaxPool2D else None
            block = ConvBlock(layer, nxt, pool)
            steps.append((i, block))
            i += len(block.layers)
        else:
            steps.append((i, layer))
            i += 1
    return steps
