"""Conv2D: 2-D convolution as im2col followed by one matrix multiply per image."""

import numpy as np

from .. import threads
from .._kernels import kernels
from ..parameter import Parameter
from .base import Layer, ShapeError, as_rng, expect_ndim


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    Args:
        in_channels (C), out_channels (F), kernel_size (k, square), stride,
        padding: int, or "same" (stride 1, odd k: pads (k-1)//2 so H_out = H).
        rng: numpy Generator or int seed for the He-normal initialisation.

    Shape:
        x:   (N, C, H, W)
        out: (N, F, H_out, W_out)
        H_out = (H + 2*padding - k) // stride + 1, W_out likewise
        W: (F, C, k, k), b: (F,)

    Forward:  cols = im2col(x)              # (C*k*k, N*H_out*W_out)
              Y = W2 @ cols                  # (F, N*H_out*W_out), W2 = W.reshape(F, C*k*k)
              out = Y + b, as (N, F, H_out, W_out)
    Backward: dY = dout as (F, N*H_out*W_out)
              dW = dY @ cols.T ; db = dY summed over its columns
              dx = col2im(W2.T @ dY)
    One matrix multiply covers the whole batch. In a model, Sequential hands Y straight to
    the ReLU and max pool that follow (minicnn/fused.py) instead of calling forward.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None):
        if padding == "same":
            if stride != 1 or kernel_size % 2 == 0:
                raise ValueError('padding="same" needs stride 1 and an odd kernel_size')
        elif not (isinstance(padding, int) and padding >= 0):
            raise ValueError(f'padding must be a non-negative int or "same", got {padding!r}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.pad = (kernel_size - 1) // 2 if padding == "same" else padding
        fan_in = in_channels * kernel_size * kernel_size
        std = np.sqrt(2.0 / fan_in)  # He et al. 2015, for ReLU networks
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.W = Parameter((as_rng(rng).standard_normal(shape) * std).astype(np.float32))
        self.b = Parameter(np.zeros(out_channels, dtype=np.float32))
        self._cols = None  # im2col buffer, reused while the batch shape stays the same

    def parameters(self):
        return [self.W, self.b]

    def config(self):
        return dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
        )

    def __repr__(self):
        k = self.kernel_size
        return f"Conv2D({self.in_channels}->{self.out_channels}, {k}x{k})"

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] != self.in_channels:
            raise ShapeError(
                f"{self!r} expects input ({self.in_channels}, H, W), got {tuple(input_shape)}"
            )
        _, H, W = input_shape
        H_out = (H + 2 * self.pad - self.kernel_size) // self.stride + 1
        W_out = (W + 2 * self.pad - self.kernel_size) // self.stride + 1
        if H_out < 1 or W_out < 1:
            raise ShapeError(f"{self!r}: input {H}x{W} is smaller than the kernel")
        return (self.out_channels, H_out, W_out)

    def forward(self, x, training=False):
        F = self.out_channels
        Y = self.matmul_forward(x)  # (F, N*H_out*W_out)
        Y += self.b.data.astype(Y.dtype, copy=False)[:, None]
        N, H_out, W_out = self._out_nhw
        out = Y.reshape(F, N, H_out * W_out).transpose(1, 0, 2)  # (N, F, H_out*W_out)
        return np.ascontiguousarray(out).reshape(N, F, H_out, W_out)

    def backward(self, dout, input_grad=True):
        N, F = dout.shape[0], self.out_channels
        dY = dout.reshape(N, F, -1).transpose(1, 0, 2).reshape(F, -1)  # (F, N*H_out*W_out)
        self.b.grad = dY.sum(axis=1).astype(self.b.data.dtype, copy=False)
        return self.matmul_backward(dY, input_grad)

    def matmul_forward(self, x):
        """im2col and the matrix multiply, without bias: x (N, C, H, W) -> Y (F, N*H'*W')."""
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        N, C, H, W = x.shape
        F, H_out, W_out = self.output_shape((C, H, W))
        k = self.kernel_size
        x = np.ascontiguousarray(x)
        shape = (C * k * k, N * H_out * W_out)
        if self._cols is None or self._cols.shape != shape or self._cols.dtype != x.dtype:
            self._cols = np.empty(shape, dtype=x.dtype)
        cols, hw, s, p = self._cols, H_out * W_out, self.stride, self.pad
        threads.parallel_for(  # each slice of the batch fills its own columns
            lambda a, b: kernels.im2col.im2col(
                x[a:b], k, k, s, p, H_out, W_out, cols[:, a * hw : b * hw]
            ),
            N,
        )
        self._x_shape = x.shape
        self._out_nhw = (N, H_out, W_out)
        W2 = self.W.data.reshape(F, -1).astype(x.dtype, copy=False)  # (F, C*k*k)
        return threads.matmul(W2, cols, split="n")  # (F, N*H_out*W_out)

    def matmul_backward(self, dY, input_grad=True):
        """Given dY (F, N*H'*W'), set W.grad and return dx (N, C, H, W) (bias not included)."""
        F = self.out_channels
        cols = self._cols  # (C*k*k, N*H_out*W_out)
        dW = threads.matmul(dY, cols.T, split="k")  # (F, C*k*k)
        self.W.grad = dW.reshape(self.W.data.shape).astype(self.W.data.dtype, copy=False)
        if not input_grad:
            return None
        k = self.kernel_size
        W2 = self.W.data.reshape(F, -1).astype(dY.dtype, copy=False)
        dcols = threads.matmul(W2.T, dY, split="n")  # (C*k*k, N*H_out*W_out)
        dx = np.empty(self._x_shape, dtype=dY.dtype)
        hw = dcols.shape[1] // len(dx)
        s, p = self.stride, self.pad
        threads.parallel_for(  # each slice of the batch adds into its own images only
            lambda a, b: kernels.im2col.col2im(dcols[:, a * hw : b * hw], k, k, s, p, dx[a:b]),
            len(dx),
        )
        return dx
