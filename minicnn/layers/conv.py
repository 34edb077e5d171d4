"""Conv2D: 2-D convolution as im2col followed by a matrix multiply."""

import numpy as np

from .. import threads
from .._kernels import kernels
from ..parameter import Parameter
from .base import Layer, ShapeError, as_rng, expect_ndim

STRIDE1_SHIFTED = True  # stride 1: im2col as shifted copies of padded planes (see _im2col)
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
              dW = dY @ cols.T ; db = dY summed over its columns  (dW computed as cols @ dY.T)
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

    def _im2col(self, x, H_out, W_out):
        """cols (C*k*k, n*H_out*Wr) of a chunk x (n, C, H, W), in a per-thread buffer.

        Wr, the width of an output row in cols, is W_out, or for stride 1 the padded width
        W + 2*pad (kernels/im2col.py: im2col_s1); columns with ow >= W_out are then unused.
        """
        n, C, H, W = x.shape
        k, s, p = self.kernel_size, self.stride, self.pad
        if s != 1 or not STRIDE1_SHIFTED:
            cols = threads.scratch("cols", (C * k * k, n * H_out * W_out), x.dtype)
            return kernels.im2col.im2col(x, k, k, s, p, H_out, W_out, cols), W_out
        Wp = W + 2 * p
        cols = threads.scratch("cols", (C * k * k, n * H_out * Wp), x.dtype)
        return kernels.im2col.im2col_s1(x, k, k, p, H_out, cols), Wp

    def matmul_forward(self, x, epilogue=None):
        """im2col and the matrix multiply, without bias: x (N, C, H, W) -> Y (F, N*H'*W').

        The batch is done a few images at a time: im2col of the chunk into a small per-thread
        buffer that stays in cache, then its columns of Y. Nothing but x is kept for
        backward, which rebuilds each chunk's cols the same way. With epilogue, Y is never
        made whole: epilogue(n0, n1, Y4, W') consumes each chunk's product while it is in
        cache, and None is returned (fused.py). Y4 (F, n1-n0, H', Wr) is contiguous, Wr >= W'
        wide; its first W' columns are the output (see _im2col).
        """
        expect_ndim(self, x, 4, "a batch (N, C, H, W)")
        N, C, H, W = x.shape
        F, H_out, W_out = self.output_shape((C, H, W))
        x = np.ascontiguousarray(x)
        self._x = x
        self._out_nhw = (N, H_out, W_out)
        hw, per = H_out * W_out, self._chunk(C, H_out * W_out)
        W2 = self.W.data.reshape(F, -1).astype(x.dtype, copy=False)  # (F, C*k*k)
        Y = None
        if epilogue is None:
            Y = np.empty((F, N * hw), dtype=x.dtype)

            def epilogue(n0, n1, Y4, W_out):
                Y[:, n0 * hw : n1 * hw].reshape(F, n1 - n0, H_out, W_out)[...] = Y4[..., :W_out]

        def work(a, b):  # images a..b-1 only: their columns of Y, their rows of out
            for n0 in range(a, b, per):
                n1 = min(n0 + per, b)
                cols, Wr = self._im2col(x[n0:n1], H_out, W_out)  # (C*k*k, n*H'*Wr)
                Y_chunk = threads.scratch("Y", (F, cols.shape[1]), x.dtype)
                np.matmul(W2, cols, out=Y_chunk)  # (F, n*H'*Wr)
                epilogue(n0, n1, Y_chunk.reshape(F, n1 - n0, H_out, Wr), W_out)

        threads.parallel_for(work, N)
        return Y

    def matmul_backward(self, dY, input_grad=True):
        """Given dY (F, N*H'*W'), set W.grad and return dx (N, C, H, W) (bias not included).

        Per chunk of images: cols = im2col(x chunk); dW.T += cols @ dY_chunk.T;
        dx chunk = col2im(W2.T @ dY_chunk). Each thread sums its own dW; the partial sums
        are added in a fixed order, so a given thread count always gives the same bits.
        dY may also be a function fill(n0, n1, dY4, W') that writes each chunk's gradient on
        demand (fused.py) into dY4 (F, n1-n0, H', Wr), contiguous: the gradient in its first
        W' columns, zeros in the rest.
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
            dWT = np.zeros(W2.T.shape, dtype=x.dtype)  # (C*k*k, F)
            for n0 in range(a, b, per):
                n1 = min(n0 + per, b)
                cols, Wr = self._im2col(x[n0:n1], H_out, W_out)  # (C*k*k, n*H'*Wr)
                dY_chunk = threads.scratch("dY", (F, cols.shape[1]), x.dtype)
                dY4 = dY_chunk.reshape(F, n1 - n0, H_out, Wr)
                if callable(dY):
                    dY(n0, n1, dY4, W_out)
                else:
                    dY4[..., W_out:] = 0  # the unused columns of the stride-1 layout
                    dY4[..., :W_out] = dY[:, n0 * hw : n1 * hw].reshape(F, -1, H_out, W_out)
                dWT += cols @ dY_chunk.T  # dW.T: measured faster than dY @ cols.T
                if input_grad:
                    dcols = threads.scratch("dcols", cols.shape, x.dtype)
                    np.matmul(W2.T, dY_chunk, out=dcols)  # (C*k*k, n*H'*Wr)
                    if Wr != W_out:
                        kernels.im2col.col2im_s1(dcols, k, k, p, H_out, dx[n0:n1])
                    else:
                        kernels.im2col.col2im(dcols, k, k, s, p, dx[n0:n1])
            partial[a] = dWT

        threads.parallel_for(work, N)
        dW = sum(partial[a] for a in sorted(partial)).T  # (F, C*k*k)
        self.W.grad = dW.reshape(self.W.data.shape).astype(self.W.data.dtype, copy=False)
        return dx
