"""Conv2D -> ReLU [-> MaxPool2D] as one step: the fast engine's fused block (and FastConv,
a Conv2D alone).

A fused block computes exactly the composition it replaces,

    out = maxpool(relu(conv(x) + b))        (or relu(conv(x) + b) without a pool)

but each chunk of the convolution's product, still in cache, goes straight into one Numba
kernel (kernels/fused.py) that adds the bias, applies ReLU, pools and writes NCHW; the
backward pass mirrors it chunk by chunk. This saves two passes over the largest
activations, a transpose each way, and the full-size product in memory. The three layers
stay separate objects that keep nothing for the block: it owns its own state.
"""

import numpy as np

import minicnn.kernels as kernels

from ..layers.base import expect_ndim, output_shapes
from .conv import bias_of, set_bias_grad
from .memo import Memo
from .winograd import conv_matmul


def relu_pool_forward(pool, Y, n0, W, scale, shift, out, argmax):
    """out = maxpool(relu(Y * scale + shift)) (or without pool) for images n0.. of Y (F, N, H,
    Wr), as many as out has."""
    if pool is None:
        kernels.fused.bias_relu_forward(Y, n0, W, scale, shift, out)
    elif pool.pool_size == pool.stride == 2:  # the paper's pooling: unrolled, same result
        kernels.fused.bias_relu_pool2_forward(Y, n0, W, scale, shift, out, argmax)
    else:
        kernels.fused.bias_relu_pool_forward(Y, n0, W, scale, shift, pool.pool_size, pool.stride,
                                             out, argmax)  # fmt: skip


def relu_pool_backward(pool, dout, out, argmax, W, dZ, n0, dshift_partial):
    """dZ (F, N, H, Wr), images n0.., = the gradient with respect to z = Y * scale + shift;
    per-image sums."""
    if pool is None:
        kernels.fused.bias_relu_backward(dout, out, W, dZ, n0, dshift_partial)
    elif pool.pool_size == pool.stride == 2:
        kernels.fused.bias_relu_pool2_backward(dout, out, argmax, W, dZ, n0, dshift_partial)
    else:
        kernels.fused.bias_relu_pool_backward(dout, out, argmax, W, dZ, n0, dshift_partial)


def shapes_of(step, x):
    """Per-image output shapes of step.layers for x (N, C, H, W), worked out once per shape.

    A ShapeError's .offset names the layer of the step that refused the shape.
    """
    expect_ndim(step.conv, x, 4, "a batch (N, C, H, W)")
    shapes = step.shapes.get(x.shape[1:])
    if shapes is None:
        shapes = step.shapes[x.shape[1:]] = output_shapes(step.layers, x.shape[1:])
    return shapes


def conv_weights(step, dtype, training):
    """step.conv's weights as step.matmul uses them; in evaluation, when preparing them costs
    anything (Winograd's transform), kept in step.memo while W is unchanged (memo.py)."""
    matmul = step.matmul
    if training or not matmul.transforms_weights:
        return matmul.prepare(dtype)
    return step.memo.get((type(matmul), dtype), [step.conv.W.data], lambda: matmul.prepare(dtype))


class ConvBlock:
    """Conv2D + ReLU, optionally + MaxPool2D, forward and backward in fused kernels.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), H' = conv then pool output size.
    Equals: pool.forward(relu.forward(conv.forward(x))) and the three backwards.
    """

    def __init__(self, conv, relu, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = [conv, relu] + ([pool] if pool is not None else [])
        self.shapes, self.memo = {}, Memo()

    def parameters(self):
        return self.conv.parameters()

    def forward(self, x, training=False):
        shapes = shapes_of(self, x)
        out = np.empty((len(x), *shapes[-1]), dtype=x.dtype)
        self._argmax = am = np.empty(out.shape, np.int32) if self.pool is not None else None
        ones, b = np.ones(self.conv.out_channels, x.dtype), bias_of(self.conv, x.dtype)

        def epilogue(n0, n1, Y4, W_out):  # Y4 (F, n1-n0, H, Wr >= W_out): chunk's product
            a = am[n0:n1] if am is not None else None
            relu_pool_forward(self.pool, Y4, 0, W_out, ones, b, out[n0:n1], a)

        self.matmul = conv_matmul(self.conv, x.shape)  # im2col or Winograd, for this shape
        weights = conv_weights(self, x.dtype, training)
        self.matmul.forward(x, epilogue, weights)  # each chunk of images goes through epilogue
        self._out = out
        return out

    def backward(self, dout, input_grad=True):
        dout = np.ascontiguousarray(dout)
        out, am = self._out, self._argmax
        db_partial = np.empty((len(dout), self.conv.out_channels), dtype=dout.dtype)

        def fill_dY(n0, n1, dY4, W_out):  # the chunk's gradient of the product
            a = am[n0:n1] if am is not None else None
            relu_pool_backward(self.pool, dout[n0:n1], out[n0:n1], a, W_out, dY4, 0,
                               db_partial[n0:n1])  # fmt: skip

        dx = self.matmul.backward(fill_dY, input_grad)
        set_bias_grad(self.conv, db_partial)
        return dx


class FastConv:
    """Conv2D alone (not followed by ReLU): = Conv2D.forward / backward, chunked.

    Shape: x (N, C, H, W) -> out (N, F, H_out, W_out).
    """

    def __init__(self, conv):
        self.layers = [conv]
        self.conv = conv
        self.shapes, self.memo = {}, Memo()

    def parameters(self):
        return self.conv.parameters()

    def forward(self, x, training=False):
        b = bias_of(self.conv, x.dtype)[:, None, None]  # (F, 1, 1)
        out = np.empty((len(x), *shapes_of(self, x)[-1]), dtype=x.dtype)

        def epilogue(n0, n1, Y4, W_out):  # out = Y + b, as (n, F, H', W')
            np.add(Y4[..., :W_out].transpose(1, 0, 2, 3), b, out=out[n0:n1])

        self.matmul = conv_matmul(self.conv, x.shape)
        self.matmul.forward(x, epilogue, conv_weights(self, x.dtype, training))
        return out

    def backward(self, dout, input_grad=True):
        def fill_dY(n0, n1, dY4, W_out):
            dY4[..., W_out:] = 0  # the unused columns of the stride-1 layout
            dY4[..., :W_out] = dout[n0:n1].transpose(1, 0, 2, 3)

        if self.conv.b is not None and self.conv.b.trainable:
            self.conv.b.grad = dout.sum(axis=(0, 2, 3)).astype(self.conv.b.data.dtype)
        return self.matmul.backward(fill_dY, input_grad)
