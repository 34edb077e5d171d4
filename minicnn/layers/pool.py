"""MaxPool2D: the largest value of each window; its gradient goes back to that value."""

import numpy as np

from .. import threads
from .._kernels import kernels
from .base import Layer, ShapeError, expect_ndim


class MaxPool2D(Layer):
    """Max pooling over pool_size x pool_size windows.

    Shape:
        x:   (N, C, H, W)
        out: (N, C, H_out, W_out), H_out = (H - pool_size) // stride + 1
    Windows that do not fit are dropped (the floor rule). stride defaults to pool_size.
    Backward sends each dout to the argmax of its window; where windows overlap
    (stride < pool_size) the contributions add up. Ties go to the first maximum.
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
        N = x.shape[0]
        C, H_out, W_out = self.output_shape(x.shape[1:])
        x = np.ascontiguousarray(x)
        out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
        self._argmax = argmax = np.empty((N, C, H_out, W_out), dtype=np.int32)
        k, s = self.pool_size, self.stride
        threads.parallel_for(
            lambda a, b: kernels.pool.maxpool_forward(x[a:b], k, s, out[a:b], argmax[a:b]), N
        )
        self._x_shape = x.shape
        return out

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        dx = np.empty(self._x_shape, dtype=dout.dtype)
        dout, argmax = np.ascontiguousarray(dout), self._argmax
        threads.parallel_for(
            lambda a, b: kernels.pool.maxpool_backward(dout[a:b], argmax[a:b], dx[a:b]), len(dx)
        )
        return dx
