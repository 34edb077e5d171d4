"""Conv2D: 2-D convolution as im2col followed by one matrix multiply."""

import numpy as np

import minicnn.kernels as kernels

from ..parameter import Parameter
from .base import Layer, ShapeError, as_rng, expect_ndim


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library), by im2col.

    out[n, f, h, w] = b[f] + sum_{c, i, j} W[f, c, i, j] * x_pad[n, c, s*h + i, s*w + j]

    Args:
        in_channels (C), out_channels (F), kernel_size (k, square), stride (s),
        padding (p): int, or "same" (stride 1, odd k: p = (k-1)//2, so H_out = H).
        rng: numpy Generator or int seed; W is He-normal, std = sqrt(2 / (C*k*k)).
        bias: False leaves out b (b is None).

    Shape:
        x:    (N, C, H, W)
        out:  (N, F, H_out, W_out), H_out = (H + 2*p - k) // s + 1, W_out likewise
        W:    (F, C, k, k), b: (F,)
        cols: (C*k*k, N*H_out*W_out), one k x k window of x per column (kernels/im2col.py)

    Forward:  Y = W2 @ cols + b, with W2 = W.reshape(F, C*k*k); Y (F, N*H_out*W_out) -> NCHW.
    Backward, with dY = dout as (F, N*H_out*W_out):
        dW = dY @ cols.T ; db = dY summed over its columns ; dx = col2im(W2.T @ dY)
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None, bias=True
    ):
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
        self.b = Parameter(np.zeros(out_channels, dtype=np.float32)) if bias else None

    def parameters(self):
        return [self.W] if self.b is None else [self.W, self.b]

    def config(self):
        config = dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
        )
        if self.b is None:
            config["bias"] = False
        return config

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
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        N, C, H, W = x.shape
        F, H_out, W_out = self.output_shape((C, H, W))
        k, s, p = self.kernel_size, self.stride, self.pad
        cols = np.empty((C * k * k, N * H_out * W_out), dtype=x.dtype)
        kernels.im2col.im2col(np.ascontiguousarray(x), k, k, s, p, H_out, W_out, cols)
        W2 = self.W.data.reshape(F, -1).astype(x.dtype, copy=False)  # (F, C*k*k)
        Y = W2 @ cols  # (F, N*H_out*W_out)
        if self.b is not None:
            Y += self.b.data.astype(x.dtype, copy=False)[:, None]
        out = Y.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3)  # (N, F, H_out, W_out)
        self.cache = (x.shape, cols)
        return np.ascontiguousarray(out)

    def backward(self, dout, input_grad=True):
        x_shape, cols = self.saved()
        F = self.out_channels
        k, s, p = self.kernel_size, self.stride, self.pad
        dY = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*H_out*W_out)
        dW = dY @ cols.T  # (F, C*k*k)
        self.W.grad = dW.reshape(self.W.data.shape).astype(self.W.data.dtype, copy=False)
        if self.b is not None:
            self.b.grad = dY.sum(axis=1).astype(self.b.data.dtype, copy=False)  # (F,)
        if not input_grad:
            return None
        W2 = self.W.data.reshape(F, -1).astype(dout.dtype, copy=False)  # (F, C*k*k)
        dcols = W2.T @ dY  # (C*k*k, N*H_out*W_out)
        dx = np.empty(x_shape, dtype=dout.dtype)
        return kernels.im2col.col2im(dcols, k, k, s, p, dx)  # (N, C, H, W)
