"""MaxPool2D on every thread: the fast engine's stand-alone max pool.

Equals minicnn.layers.MaxPool2D (the same kernels, kernels/pool.py), with the batch cut
into one slice per thread; each image writes only its own slice, so there is no race.
"""

import numpy as np

import minicnn.kernels as kernels

from ..layers.base import expect_ndim
from . import threads


class FastMaxPool:
    """Shape: x (N, C, H, W) -> out (N, C, H_out, W_out), as MaxPool2D."""

    def __init__(self, pool):
        self.layers = [pool]
        self.pool = pool

    def parameters(self):
        return []

    def forward(self, x, training=False):
        pool = self.pool
        expect_ndim(pool, x, 4, "a batch (N, C, H, W)")
        x = np.ascontiguousarray(x)
        out = np.empty((len(x), *pool.output_shape(x.shape[1:])), dtype=x.dtype)
        self._argmax = am = np.empty(out.shape, dtype=np.int32)
        k, s = pool.pool_size, pool.stride
        threads.parallel_for(
            lambda a, b: kernels.pool.maxpool_forward(x[a:b], k, s, out[a:b], am[a:b]), len(x)
        )
        self._x_shape = x.shape
        return out

    def backward(self, dout, input_grad=True):
        if not input_grad:
            return None
        dx = np.empty(self._x_shape, dtype=dout.dtype)
        dout, am = np.ascontiguousarray(dout), self._argmax
        threads.parallel_for(
            lambda a, b: kernels.pool.maxpool_backward(dout[a:b], am[a:b], dx[a:b]), len(dx)
        )
        return dx
