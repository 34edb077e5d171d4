"""Conv2D -> ReLU [-> MaxPool2D] as one step: the fast engine's fused block.

A fused block computes exactly the composition it replaces,

    out = maxpool(relu(conv(x) + b))        (or relu(conv(x) + b) without a pool)

but each chunk of the convolution's product, still in cache, goes straight into one Numba
kernel (kernels/fused.py) that adds the bias, applies ReLU, pools and writes NCHW; the
backward pass mirrors it chunk by chunk. This saves two passes over the largest
activations, a transpose each way, and the full-size product in memory. The three layers
stay separate objects that keep nothing for the block: it owns its own state.
"""

import numpy as np

from .._kernels import kernels
from ..layers.base import expect_ndim, output_shapes
from .conv import ChunkedConv, bias_of, set_bias_grad


class ConvBlock:
    """Conv2D + ReLU, optionally + MaxPool2D, forward and backward in fused kernels.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), H' = conv then pool output size.
    Equals: pool.forward(relu.forward(conv.forward(x))) and the three backwards.
    """

    def __init__(self, conv, relu, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = [conv, relu] + ([pool] if pool is not None else [])
        self.matmul = ChunkedConv(conv)

    def parameters(self):
        return self.conv.parameters()

    def forward(self, x, training=False):
        expect_ndim(self.conv, x, 4, "a batch (N, C, H, W)")
        shapes = output_shapes(self.layers, x.shape[1:])  # ShapeError: .offset names one
        out = np.empty((len(x), *shapes[-1]), dtype=x.dtype)
        b = bias_of(self.conv, x.dtype)
        pool = self.pool
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

        self.matmul.forward(x, epilogue)  # each chunk of images goes through epilogue
        self._out = out
        return out

    def backward(self, dout, input_grad=True):
        dout = np.ascontiguousarray(dout)
        out, am = self._out, self._argmax
        db_partial = np.empty((len(dout), self.conv.out_channels), dtype=dout.dtype)

        def fill_dY(n0, n1, dY4, W_out):  # the chunk's gradient of the product
            g, o, db = dout[n0:n1], out[n0:n1], db_partial[n0:n1]
            if self.pool is None:
                kernels.fused.bias_relu_backward(g, o, W_out, dY4, db)
            elif self.pool.pool_size == self.pool.stride == 2:
                kernels.fused.bias_relu_pool2_backward(g, o, am[n0:n1], W_out, dY4, db)
            else:
                kernels.fused.bias_relu_pool_backward(g, o, am[n0:n1], W_out, dY4, db)

        dx = self.matmul.backward(fill_dY, input_grad)
        set_bias_grad(self.conv, db_partial)
        return dx
