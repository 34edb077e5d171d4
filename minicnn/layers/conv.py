"""Conv2D: 2-D convolution as im2col followed by one matrix multiply per image."""

import numpy as np

from .. import threads
from .._kernels import kernels
from ..parameter import Parameter
from .base import Layer, ShapeError, as_rng, expect_ndim

CHUNK_FLOATS = 1 << 18  # im2col works on chunks of about this many values (1 MiB float32)


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
    im2col runs on a few images at a time, so cols stays in cache and is never stored
    whole (backward rebuilds it). In a model, Sequential hands Y straight to the ReLU and
    max pool that follow (minicnn/fused.py) instead of calling forward.
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

    def _chunk(self, C, hw):
        """Images per im2col chunk, so that one chunk's cols (C*k*k, n*hw) stays in cache."""
        return max(1, CHUNK_FLOATS // (C * self.kernel_size**2 * hw))

    def matmul_forward(self, x, epilogue=None):
        """im2col and the matrix multiply, without bias: x (N, C, H, W) -> Y (F, N*H'*W').

        The batch is done a few images at a time: im2col of the chunk into a small per-thread
        buffer that stays in cache, then its columns of Y. Nothing but x is kept for
        backward, which rebuilds each chunk's cols the same way. With epilogue, Y is never
        made whole: epilogue(n0, n1, Y_chunk) consumes each chunk (F, (n1-n0)*H'*W') while
        it is in cache, and None is returned (minicnn/fused.py uses this).
        """
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        N, C, H, W = x.shape
        F, H_out, W_out = self.output_shape((C, H, W))
        k, s, p = self.kernel_size, self.stride, self.pad
        x = np.ascontiguousarray(x)
        self._x = x
        self._out_nhw = (N, H_out, W_out)
        hw, per = H_out * W_out, self._chunk(C, H_out * W_out)
        W2 = self.W.data.reshape(F, -1).astype(x.dtype, copy=False)  # (F, C*k*k)
        Y = np.empty((F, N * hw), dtype=x.dtype) if epilogue is None else None

        def work(a, b):  # images a..b-1 write only columns a*hw .. b*hw-1 of Y
            for n0 in range(a, b, per):
                n1 = min(n0 + per, b)
                cols = threads.scratch("cols", (C * k * k, (n1 - n0) * hw), x.dtype)
                kernels.im2col.im2col(x[n0:n1], k, k, s, p, H_out, W_out, cols)
                if epilogue is None:
                    np.matmul(W2, cols, out=Y[:, n0 * hw : n1 * hw])  # (F, chunk*H'*W')
                else:
                    Y_chunk = threads.scratch("Y", (F, (n1 - n0) * hw), x.dtype)
                    epilogue(n0, n1, np.matmul(W2, cols, out=Y_chunk))

        threads.parallel_for(work, N)
        return Y

    def matmul_backward(self, dY, input_grad=True):
        """Given dY (F, N*H'*W'), set W.grad and return dx (N, C, H, W) (bias not included).

        Per chunk of images: cols = im2col(x chunk); dW += dY_chunk @ cols.T;
        dx chunk = col2im(W2.T @ dY_chunk). Each thread sums its own dW; the partial sums
        are added in a fixed order, so a given thread count always gives the same bits.
        dY may also be a function (n0, n1) -> dY_chunk that makes each chunk on demand.
        """
        x = self._x
        N, C, H, W = x.shape
        F, k, s, p = self.out_channels, self.kernel_size, self.stride, self.pad
        _, H_out, W_out = self._out_nhw
        hw, per = H_out * W_out, self._chunk(C, H_out * W_out)
        W2 = self.W.data.reshape(F, -1).astype(x.dtype, copy=False)  # (F, C*k*k)
        dx = np.empty(x.shape, dtype=x.dtype) if input_grad else None
        partial = {}

        def work(a, b):
            dW = np.zeros(W2.shape, dtype=x.dtype)
            for n0 in range(a, b, per):
                n1 = min(n0 + per, b)
                cols = threads.scratch("cols", (C * k * k, (n1 - n0) * hw), x.dtype)
                kernels.im2col.im2col(x[n0:n1], k, k, s, p, H_out, W_out, cols)
                dY_chunk = dY(n0, n1) if callable(dY) else dY[:, n0 * hw : n1 * hw]
                dW += dY_chunk @ cols.T  # (F, C*k*k)
                if input_grad:
                    dcols = threads.scratch("dcols", cols.shape, x.dtype)
                    np.matmul(W2.T, dY_chunk, out=dcols)  # (C*k*k, chunk*H'*W')
                    kernels.im2col.col2im(dcols, k, k, s, p, dx[n0:n1])
            partial[a] = dW

        threads.parallel_for(work, N)
        dW = sum(partial[a] for a in sorted(partial))
        self.W.grad = dW.reshape(self.W.data.shape).astype(self.W.data.dtype, copy=False)
        return dx
