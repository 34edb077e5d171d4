"""Conv2D 3x3, stride 1, by Winograd F(2x2, 3x3): the fast engine's convolution where it wins.

It computes what minicnn.layers.Conv2D computes, with 16 matrix products of (F, C) by
(C, tiles) per chunk instead of one of (F, 9C) by (9C, pixels): 2.25x fewer multiplies, and
the input is expanded 4x (16 values per 2x2 output block) instead of 9x (kernels/winograd.py
has the transforms and their derivation). Backward is the exact adjoint of that forward:

    dM = A dY A^T                  (transform_output_adjoint, per tile)
    S  = sum over chunks of dM @ V^T,  dW = G^T S G       (the weight transform's adjoint)
    dV = U^T @ dM,  dx = sum over tiles of B dV B^T       (transform_input_adjoint)

Rounding differs from im2col's: the transforms add and subtract inputs before the products.
The float32 result stays within the bound the fast engine is held to (norm-wise 1e-5 of the
reference layer); float64 within 1e-12. tests/test_fast.py checks both, as for im2col.
conv.py's ChunkedConv gives the chunk loop, threads and the dW reduction; this class replaces
what one chunk does and how many images a chunk holds.
"""

import numpy as np

import minicnn.kernels as kernels

from . import threads
from .conv import ChunkedConv

TILE_FLOATS = 1 << 18  # a chunk's transformed input V (16, C, tiles) holds about this many
ROW_GAP = 16  # floats between the 16 matrices of a stack (see kernels/winograd.py)

G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def transform_weights(W2, C):
    """U (16, F, C) = G g G^T for every 3x3 kernel g of W2 (F, C*9); U[4a + b] = row a, col b."""
    F, G_ = len(W2), G.astype(W2.dtype)
    t = (W2.reshape(-1, 3) @ G_.T).reshape(F * C, 3, 4)  # [fc, i, b] = sum_j g[i, j] G[b, j]
    t = (t.transpose(0, 2, 1).reshape(-1, 3) @ G_.T).reshape(F, C, 4, 4)  # [f, c, b, a]
    return np.ascontiguousarray(t.transpose(3, 2, 0, 1)).reshape(16, F, C)


def transform_weights_adjoint(S):
    """dW (F, C*9) = G^T s G for every 4x4 s of S (16, F, C): the gradient of transform_weights."""
    _, F, C = S.shape
    G_ = G.astype(S.dtype)
    s = S.reshape(4, 4, F, C).transpose(2, 3, 0, 1).reshape(-1, 4)  # [fca, b]
    t = (s @ G_).reshape(F * C, 4, 3)  # [fc, a, j] = sum_b s[a, b] G[b, j]
    t = (t.transpose(0, 2, 1).reshape(-1, 4) @ G_).reshape(F, C, 3, 3)  # [f, c, j, i]
    return np.ascontiguousarray(t.transpose(0, 1, 3, 2)).reshape(F, C * 9)


def stack(name, rows, cols, dtype):
    """A per-thread stack of 16 matrices (rows, cols), as (16, rows, cols) and as (16, S).

    The matrices are contiguous but ROW_GAP floats apart, so that the kernels' 16 streams do
    not alias in cache; the (16, S) form is what the kernels take.
    """
    buf = threads.scratch(name, (16, rows * cols + ROW_GAP), dtype)
    return buf[:, : rows * cols].reshape(16, rows, cols), buf


class WinogradConv(ChunkedConv):
    """The Winograd F(2x2, 3x3) form of a 3x3 stride-1 Conv2D, chunk by chunk; no bias.

    Same interface as ChunkedConv; its product Y4 is (F, n, H_out, W_out) (no extra columns).
    """

    transforms_weights = True  # prepare() computes U: worth keeping in evaluation

    def row_width(self, W, W_out):
        return W_out

    def _tiles(self, H_out, W_out):
        return (H_out + 1) // 2, (W_out + 1) // 2

    def _chunk(self, C, H_out, W_out):
        """Images per chunk, so that one chunk's V (16, C, n*tiles) stays in cache."""
        th, tw = self._tiles(H_out, W_out)
        return max(1, TILE_FLOATS // (16 * C * th * tw))

    def _prepare(self, W2):
        return transform_weights(W2, self.conv.in_channels)  # (16, F, C)

    def _transform_input(self, x, th, tw):
        n, C = x.shape[:2]
        V, rows = stack("V", C, n * th * tw, x.dtype)
        kernels.winograd.transform_input(x, self.conv.pad, th, tw, rows)
        return V

    def _forward_chunk(self, x, U, H_out, W_out):
        """Y4 (F, n, H_out, W_out) of a chunk x (n, C, H, W), in a scratch buffer."""
        th, tw = self._tiles(H_out, W_out)
        V = self._transform_input(x, th, tw)  # (16, C, T)
        M, rows = stack("M", len(U[0]), V.shape[2], x.dtype)
        np.matmul(U, V, out=M)  # (16, F, T)
        Y = threads.scratch("Y", (len(U[0]), len(x), H_out, W_out), x.dtype)
        return kernels.winograd.transform_output(rows, th, tw, Y)

    def _backward_chunk(self, x, dY4, U, weight_grad, S, dx):
        """One chunk's share: returns S (16, F, C) + dM @ V^T, and writes dx (n, C, H, W)."""
        F, n, H_out, W_out = dY4.shape
        th, tw = self._tiles(H_out, W_out)
        dM, rows = stack("dM", F, n * th * tw, x.dtype)
        kernels.winograd.transform_output_adjoint(dY4, th, tw, rows)
        if weight_grad:
            V = self._transform_input(x, th, tw)
            part = np.matmul(dM, V.transpose(0, 2, 1))  # (16, F, C)
            S = part if S is None else S + part
        if dx is not None:
            dV, rows = stack("dV", x.shape[1], dM.shape[2], x.dtype)
            np.matmul(U.transpose(0, 2, 1), dM, out=dV)  # (16, C, T)
            kernels.winograd.transform_input_adjoint(rows, self.conv.pad, th, tw, dx)
        return S

    def _weight_grad(self, S):
        return transform_weights_adjoint(S)


WINOGRAD = True  # 3x3 stride-1 convolutions by Winograd F(2x2, 3x3) ...
WINOGRAD_MIN_CHANNELS = 16  # ... with at least this many input channels
WINOGRAD_MIN_SIZE = 8  # ... and outputs at least this many pixels high and wide


def conv_matmul(conv, input_shape):
    """The chunked product for a Conv2D on a batch of input_shape (N, C, H, W).

    WinogradConv for a 3x3 kernel at stride 1, with at least WINOGRAD_MIN_CHANNELS input
    channels and an output at least WINOGRAD_MIN_SIZE wide and high; ChunkedConv (im2col)
    for everything else. benchmarks/bench_conv.py times both on every layer shape of the
    presets: with fewer channels im2col's one product of depth 9C beats 16 products of
    depth C, and on 4x4 outputs the transforms cost more than the multiplies saved. A rule
    on the shape, not a timing at first use: the same model always takes the same path, so
    one seed gives the same bits.
    """
    H_out, W_out = conv.output_shape(input_shape[1:])[1:]
    if (WINOGRAD and conv.kernel_size == 3 and conv.stride == 1
            and conv.in_channels >= WINOGRAD_MIN_CHANNELS
            and min(H_out, W_out) >= WINOGRAD_MIN_SIZE):  # fmt: skip
        return WinogradConv(conv)
    return ChunkedConv(conv)
