"""MaxPool2D: the largest value of each window; its gradient goes back to that value."""

import numpy as np

import minicnn.kernels as kernels

from .base import Layer, ShapeError, expect_ndim


class MaxPool2D(Layer):
    """Max pooling: out[n, c, h, w] = max of x[n, c] over the window at (s*h, s*w).

    Args: pool_size (k, square windows), stride (s, default k).

    Shape:
        x:   (N, C, H, W)
        out: (N, C, H_out, W_out), H_out = (H - k) // s + 1, W_out likewise
    Windows that do not fit are dropped (the floor rule). Forward keeps the argmax of every
    window (its flat index h*W + w in the plane); ties go to the first maximum in reading
    order (row by row, left to right), as NumPy's argmax.
    Backward: dx[argmax] += dout, so where windows overlap (s < k) the contributions add up.
    """

    def __init__(self, pool_size=2, stride=None):
        self.pool_size = pool_size
        self.stride = pool_size if stride is None else stride

    def config(self):
        return dict(pool_size=self.pool_size, stride=self.stride)

    def __repr__(self):
        return f"MaxPool2D({self.pool_size}, stride={self.stride})"

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self!r} expects (C, H, W), got {tuple(input_shape)}")
        C, H, W = input_shape
        if H < self.pool_size or W < self.pool_size:
            raise ShapeError(f"{self!r}: input {H}x{W} is smaller than the pool window")
        return (C, (H - self.pool_size) // self.stride + 1, (W - self.pool_size) // self.stride + 1)

    def forward(self, x, training=False):
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        out = np.empty((len(x), *self.output_shape(x.shape[1:])), dtype=x.dtype)
        argmax = np.empty(out.shape, dtype=np.int32)  # (N, C, H_out, W_out)
        x = np.ascontiguousarray(x)
        kernels.pool.maxpool_forward(x, self.pool_size, self.stride, out, argmax)
        self.cache = (x.shape, argmax)
        return out

    def backward(self, dout, input_grad=True):
        x_shape, argmax = self.saved()
        if not input_grad:
            return None
        dx = np.empty(x_shape, dtype=dout.dtype)
        return kernels.pool.maxpool_backward(np.ascontiguousarray(dout), argmax, dx)
