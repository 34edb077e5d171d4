"""Conv2D a few images at a time, on every thread: the fast engine's convolution.

It computes what minicnn.layers.Conv2D computes (im2col -> one matrix multiply), with four
changes that only make it faster:
- the batch is cut into one slice per thread (threads.parallel_for), and each slice into
  chunks of a few images, so that a chunk's cols (C*k*k, n*H'*W') stays in cache and the
  whole-batch cols is never stored (backward rebuilds each chunk's cols instead);
- a stride-1 convolution (outputs at least SHIFTED_MIN_WIDTH wide) builds its cols as
  shifted copies of zero-padded planes (kernels/im2col.py: im2col_s1): its output rows are
  the padded width Wr = W + 2*pad wide, and the columns ow >= W' are computed and ignored;
- each chunk's product goes to an epilogue while it is in cache: FastConv (blocks.py) adds
  the bias and writes NCHW there; the fused blocks also apply ReLU and max pool;
- a frozen W (trainable False) gets no dW: backward then builds no cols, only dx (unless
  the caller asks for dW, see backward).
What one chunk does is four methods (_prepare, _forward_chunk, _backward_chunk and
_weight_grad), and its size and row width two more (_chunk, row_width): winograd.py's
WinogradConv replaces those, and keeps the chunk loop, the threads and the dW reduction
here. Tests: tests/test_fast.py holds every gradient of both to the reference layer.
A caller may prepare the weights itself (prepare) and pass them to forward: in evaluation
the steps keep them from call to call (memo.py).
"""

import numpy as np

import minicnn.kernels as kernels

from ..layers.base import expect_ndim
from ..layers.cost import macs
from . import threads

STRIDE1_SHIFTED = True  # stride 1: im2col as shifted copies of padded planes
SHIFTED_MIN_WIDTH = 12  # ... for outputs at least this wide (narrow rows waste more columns)
CHUNK_FLOATS = 1 << 18  # a chunk's cols holds about this many values (1 MiB float32)


class ChunkedConv:
    """The matrix-multiply part of a Conv2D, chunk by chunk: Y = W2 @ im2col(x), no bias.

    Owns what its backward needs (the input and the output size); the Conv2D it reads
    keeps nothing for it.
    """

    transforms_weights = False  # prepare() gives W itself (reshaped): nothing worth keeping

    def __init__(self, conv):
        self.conv = conv

    def _chunk(self, C, H_out, W_out):
        """Images per chunk, so that one chunk's cols (C*k*k, n*H_out*W_out) stays in cache."""
        return max(1, CHUNK_FLOATS // (C * self.conv.kernel_size**2 * H_out * W_out))

    def row_width(self, W, W_out):
        """Wr, the width of an output row in cols: W_out, or for stride 1 the padded width."""
        if self.conv.stride != 1 or not STRIDE1_SHIFTED or W_out < SHIFTED_MIN_WIDTH:
            return W_out
        return W + 2 * self.conv.pad

    def _im2col(self, x, H_out, W_out):
        """cols (C*k*k, n*H_out*Wr) of a chunk x (n, C, H, W) in a per-thread buffer, and Wr."""
        n, C, H, W = x.shape
        k, s, p = self.conv.kernel_size, self.conv.stride, self.conv.pad
        Wr = self.row_width(W, W_out)
        cols = threads.scratch("cols", (C * k * k, n * H_out * Wr), x.dtype)
        if Wr == W_out:
            return kernels.im2col.im2col(x, k, k, s, p, H_out, W_out, cols), Wr
        return kernels.im2col.im2col_s1(x, k, k, p, H_out, cols), Wr

    def forward(self, x, epilogue, weights=None):
        """For each chunk of images n0..n1-1: epilogue(n0, n1, Y4, W_out).

        Y4 (F, n1-n0, H_out, Wr), contiguous, is the chunk's product W2 @ cols; its first
        W_out columns are the output, the rest (stride 1) are to be ignored. weights: W2 as
        prepare() gives it; default prepare(x.dtype), the layer's weights (a fused BatchNorm
        passes them scaled). Returns the output's per-image shape (F, H_out, W_out).
        """
        conv = self.conv
        expect_ndim(conv, x, 4, "a batch (N, C, H, W)")
        N, C, H, W = x.shape
        F, H_out, W_out = conv.output_shape((C, H, W))
        x = np.ascontiguousarray(x)
        self._x, self._out_shape = x, (F, H_out, W_out)
        per = self._chunk(C, H_out, W_out)
        if weights is None:
            weights = self.prepare(x.dtype)
        self._prepared = weights  # backward's too

        def work(a, b):  # images a..b-1 only: their columns of Y, their rows of out
            for n0 in range(a, b, per):
                n1 = min(n0 + per, b)
                Y4 = self._forward_chunk(x[n0:n1], weights, H_out, W_out)
                epilogue(n0, n1, Y4, W_out)

        threads.parallel_for(work, N, N * macs(conv, (C, H, W)))
        return self._out_shape

    def prepare(self, dtype, W2=None):
        """The weights as the chunks use them, from W2 (F, C*k*k), by default the layer's W."""
        if W2 is None:
            W2 = self.conv.W.data.reshape(self.conv.out_channels, -1)
        return self._prepare(W2.astype(dtype, copy=False))

    def _prepare(self, W2):
        """The weights as the chunks use them: here W2 (F, C*k*k) itself."""
        return W2

    def _forward_chunk(self, x, W2, H_out, W_out):
        """Y4 (F, n, H_out, Wr) = W2 @ cols of a chunk x (n, C, H, W), in a scratch buffer."""
        F, n = W2.shape[0], len(x)
        cols, Wr = self._im2col(x, H_out, W_out)  # (C*k*k, n*H'*Wr)
        Y = threads.scratch("Y", (F, cols.shape[1]), x.dtype)
        np.matmul(W2, cols, out=Y)  # (F, n*H'*Wr)
        return Y.reshape(F, n, H_out, Wr)

    def backward(self, fill_dY, input_grad=True, weight_grad=None):
        """Set W.grad and return dx (N, C, H, W) (None unless input_grad); bias not included.

        fill_dY(n0, n1, dY4, W_out) writes the chunk's gradient of the product into dY4
        (F, n1-n0, H_out, Wr): the gradient in its first W_out columns, zeros in the rest.
        Per chunk: dW.T += cols @ dY.T (measured faster than dY @ cols.T) and
        dx = col2im(W2.T @ dY). Each thread sums its own dW; the partial sums are added in
        a fixed order, so a given thread count always gives the same bits. The product's
        weights are the forward's (W2 as it passed them, prepared once). W.grad is the
        gradient of those weights dY @ cols.T, whatever W2 the forward used; it is also kept
        as self.dW (None when not computed).
        weight_grad: compute dW at all (default: W.trainable). A frozen W skips im2col and
        the product, and keeps its .grad; then only dx costs anything. A caller that needs
        dW anyway (a fused BatchNorm's dgamma) passes True and reads self.dW.
        """
        conv, x = self.conv, self._x
        N, C, H, W = x.shape
        F, H_out, W_out = self._out_shape
        per = self._chunk(C, H_out, W_out)
        weights = self._prepared
        dx = np.empty(x.shape, dtype=x.dtype) if input_grad else None
        weight_grad = conv.W.trainable if weight_grad is None else weight_grad
        Wr = self.row_width(W, W_out)
        partial = {}

        def work(a, b):
            dW_sum = None
            for n0 in range(a, b, per):
                n1 = min(n0 + per, b)
                dY = threads.scratch("dY", (F, n1 - n0, H_out, Wr), x.dtype)
                fill_dY(n0, n1, dY, W_out)
                dx_chunk = dx[n0:n1] if input_grad else None
                dW_sum = self._backward_chunk(x[n0:n1], dY, weights, weight_grad, dW_sum, dx_chunk)
            partial[a] = dW_sum

        products = int(weight_grad) + int(input_grad)  # dW's and dx's: each the forward's size
        threads.parallel_for(work, N, products * N * macs(conv, (C, H, W)))
        self.dW = None
        if weight_grad:
            dW = self._weight_grad(sum(partial[a] for a in sorted(partial)))
            self.dW = dW.reshape(conv.W.data.shape).astype(conv.W.data.dtype, copy=False)
            if conv.W.trainable:
                conv.W.grad = self.dW
        return dx

    def _backward_chunk(self, x, dY4, W2, weight_grad, dWT, dx):
        """One chunk's share: returns dWT (C*k*k, F) + cols @ dY.T, and writes dx (n, C, H, W).

        dWT is None for the first chunk; dx is None when no input gradient is wanted.
        """
        k, s, p = self.conv.kernel_size, self.conv.stride, self.conv.pad
        H_out, Wr = dY4.shape[2], dY4.shape[3]
        dY = dY4.reshape(len(dY4), -1)  # (F, n*H'*Wr)
        if weight_grad:  # only dW needs the chunk's cols
            cols, _ = self._im2col(x, H_out, self._out_shape[2])  # (C*k*k, n*H'*Wr)
            dWT = cols @ dY.T if dWT is None else dWT + cols @ dY.T
        if dx is not None:
            dcols = threads.scratch("dcols", (W2.shape[1], dY.shape[1]), x.dtype)
            np.matmul(W2.T, dY, out=dcols)  # (C*k*k, n*H'*Wr)
            if Wr != self._out_shape[2]:
                kernels.im2col.col2im_s1(dcols, k, k, p, H_out, dx)
            else:
                kernels.im2col.col2im(dcols, k, k, s, p, dx)
        return dWT

    def _weight_grad(self, dWT):
        """dW (F, C*k*k) from the summed chunk results."""
        return dWT.T


def bias_of(conv, dtype):
    """The convolution's bias as dtype, zeros when it has none (bias=False)."""
    if conv.b is None:
        return np.zeros(conv.out_channels, dtype=dtype)
    return conv.b.data.astype(dtype, copy=False)


def set_bias_grad(conv, db_partial):
    """b.grad = the per-image partial sums db_partial (N, F) added up; nothing without a bias
    or with a frozen one."""
    if conv.b is not None and conv.b.trainable:
        conv.b.grad = db_partial.sum(axis=0).astype(conv.b.data.dtype, copy=False)
