"""Conv2D -> ReLU [-> MaxPool2D] run as one step: an execution detail of Sequential.

The three layers stay separate objects (a model still iterates as Conv2D, ReLU,
MaxPool2D) and each still works on its own. When Sequential meets them in a row it runs
them as one ConvBlock instead: each chunk of the convolution's matrix product, still in
cache, goes straight into one Numba kernel that adds the bias, applies ReLU, pools and
writes NCHW; the backward pass mirrors it chunk by chunk. This saves two passes over the
largest activations, a transpose each way, and the full-size product in memory. The
result is the same as running the layers one by one (checked in tests/test_fused.py);
`Sequential(..., fuse=False)` runs them one by one.
"""

import numpy as np

from ._kernels import kernels
from .layers import Conv2D, MaxPool2D, ReLU
from .layers.base import expect_ndim, output_shapes


class ConvBlock:
    """Conv2D + ReLU, optionally + MaxPool2D, forward and backward in fused kernels.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), H' = conv then pool output size.
    """

    def __init__(self, conv, relu, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = [conv, relu] + ([pool] if pool is not None else [])

    def parameters(self):
        return self.conv.parameters()

    def forward(self, x, training=False):
        conv, pool = self.conv, self.pool
        expect_ndim(conv, x, 4, "a batch (N, C, H, W)")
        shapes = output_shapes(self.layers, x.shape[1:])  # ShapeError: .offset names one
        F, H, W = shapes[0]
        N = len(x)
        out = np.empty((N, *shapes[-1]), dtype=x.dtype)
        b = conv.b.data.astype(x.dtype, copy=False)
        if pool is None:
            self._argmax = None

            def epilogue(n0, n1, Y4, W_out):  # Y4 (F, n1-n0, H, Wr >= W_out): chunk's product
                kernels.fused.bias_relu_forward(Y4, W_out, b, out[n0:n1])

        else:
            self._argmax = am = np.empty(out.shape, dtype=np.int32)
            k, s = pool.pool_size, pool.stride

            def epilogue(n0, n1, Y4, W_out):
                o, a = out[n0:n1], am[n0:n1]
                if k == s == 2:  # the paper's pooling: an unrolled kernel, same result
                    kernels.fused.bias_relu_pool2_forward(Y4, W_out, b, o, a)
                else:
                    kernels.fused.bias_relu_pool_forward(Y4, W_out, b, k, s, o, a)

        conv.matmul_forward(x, epilogue)  # each chunk of images goes through epilogue
        self._out = out
        self._Y_shape = (F, N, H, W)
        return out

    def backward(self, dout, input_grad=True):
        conv = self.conv
        F, N, H, W = self._Y_shape
        dout = np.ascontiguousarray(dout)
        out, am = self._out, self._argmax
        db_partial = np.empty((N, F), dtype=dout.dtype)

        def dY(n0, n1, dY4, W_out):  # this chunk's gradient of the product, (F, n1-n0, H, Wr)
            g, o, db = dout[n0:n1], out[n0:n1], db_partial[n0:n1]
            if self.pool is None:
                kernels.fused.bias_relu_backward(g, o, W_out, dY4, db)
            elif self.pool.pool_size == self.pool.stride == 2:
                kernels.fused.bias_relu_pool2_backward(g, o, am[n0:n1], W_out, dY4, db)
            else:
                kernels.fused.bias_relu_pool_backward(g, o, am[n0:n1], W_out, dY4, db)

        dx = conv.matmul_backward(dY, input_grad)
        conv.b.grad = db_partial.sum(axis=0).astype(conv.b.data.dtype, copy=False)
        return dx


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
