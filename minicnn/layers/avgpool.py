"""AvgPool2D and GlobalAvgPool2D: the mean of each window; its gradient is shared evenly."""

import numpy as np

from .base import Layer, ShapeError, expect_ndim
from .pool import MaxPool2D


class AvgPool2D(Layer):
    """Average pooling over pool_size x pool_size windows.

    Shape:
        x:   (N, C, H, W)
        out: (N, C, H_out, W_out), H_out = (H - pool_size) // stride + 1
    Windows that do not fit are dropped (the floor rule, as MaxPool2D). stride defaults to
    pool_size. Forward sums the k*k shifted, strided views of x; backward adds dout / k**2
    back through the same views, so overlapping windows (stride < pool_size) add up.
    """

    # Arguments, config and the floor rule are MaxPool2D's: one place for window arithmetic.
    __init__ = MaxPool2D.__init__
    config = MaxPool2D.config
    output_shape = MaxPool2D.output_shape

    def __repr__(self):
        return f"AvgPool2D({self.pool_size}, stride={self.stride})"

    def _windows(self, H_out, W_out):
        """The k*k slices (rows, cols): x[:, :, rows, cols] is one offset of every window."""
        k, s = self.pool_size, self.stride
        for i in range(k):
            for j in range(k):
                yield slice(i, i + s * (H_out - 1) + 1, s), slice(j, j + s * (W_out - 1) + 1, s)

    def forward(self, x, training=False):
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        C, H_out, W_out = self.output_shape(x.shape[1:])
        out = np.zeros((len(x), C, H_out, W_out), dtype=x.dtype)
        for rows, cols in self._windows(H_out, W_out):
            out += x[:, :, rows, cols]  # (N, C, H_out, W_out)
        self.cache = x.shape
        return out / x.dtype.type(self.pool_size**2)

    def backward(self, dout, input_grad=True):
        x_shape = self.saved()
        if not input_grad:
            return None
        _, _, H_out, W_out = dout.shape
        share = dout / dout.dtype.type(self.pool_size**2)
        dx = np.zeros(x_shape, dtype=dout.dtype)
        for rows, cols in self._windows(H_out, W_out):
            dx[:, :, rows, cols] += share
        return dx


class GlobalAvgPool2D(Layer):
    """The mean of each feature map: (N, C, H, W) -> (N, C), before a dense head.

    Shape:
        x:   (N, C, H, W)
        out: (N, C)
    Backward: dx[n, c, h, w] = dout[n, c] / (H * W).
    """

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(f"{self!r} expects (C, H, W), got {tuple(input_shape)}")
        return (input_shape[0],)

    def forward(self, x, training=False):
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        self.cache = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dout, input_grad=True):
        x_shape = self.saved()
        if not input_grad:
            return None
        H, W = x_shape[2:]
        share = dout[:, :, None, None] / dout.dtype.type(H * W)  # (N, C, 1, 1)
        return np.broadcast_to(share, x_shape).copy()
