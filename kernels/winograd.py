"""Winograd F(2x2, 3x3): a 3x3 stride-1 convolution with 2.25x fewer multiplies.

Lavin & Gray (2016). A 2x2 block of outputs of a 3x3 kernel g reads a 4x4 patch d of the
(zero-padded) input, and equals

    y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 4x4)

    B^T = [1  0 -1  0]     G = [ 1    0    0 ]     A^T = [1  1  1  0]
          [0  1  1  0]         [1/2  1/2  1/2]           [0  1 -1 -1]
          [0 -1  1  0]         [1/2 -1/2  1/2]
          [0  1  0 -1]         [ 0    0    1 ]

16 multiplies per 2x2 block instead of 36. Summed over input channels, each of the 16
positions xi = 4*i + j of the 4x4 product is a matrix multiply: M[xi] (F, T) =
U[xi] (F, C) @ V[xi] (C, T), over the T tiles of a chunk. These kernels are the transforms
around those products, and their adjoints for backward. Each takes or gives the 16
matrices as the rows of a 2-D array (16, S), S >= C*T: the caller leaves a gap between
rows, so that the 16 streams a tile reads or writes do not map to the same cache set
(rows exactly 2^k bytes apart did: measured 9x slower).

- transform_input(x) -> V = B^T d B for every tile (tile t = (n*th + ty)*tw + tx, its
  top-left input pixel (2ty - pad, 2tx - pad));
- transform_output(M) -> y = A^T m A, the 2x2 outputs of every tile (cropped at odd sizes);
- transform_output_adjoint(dy) -> A dy A^T, and transform_input_adjoint(dV) -> the sum
  over tiles of B dV B^T (tiles overlap by two pixels): the exact gradients of the two
  transforms, so backward is the adjoint of this forward, as col2im is of im2col.
The weight transform U = G g G^T and its adjoint dW = G^T S G are small: minicnn/fast/
winograd.py does them in NumPy. tests/test_kernels.py holds each kernel to its definition.

Each transform is separable: a combination of rows, then of columns. The kernels apply the
row step to whole rows of a plane at once and the column step along a row of tiles, so
that every inner loop runs over tx (or over a row) with no dependence between iterations.
LLVM still runs most of them as scalar code (rows of 16-34 values, several arrays it
cannot prove apart; split into one loop per output row, they vectorise and get slower):
2-4 ns per pixel, about half of a Winograd layer's time (benchmarks/RESULTS.md).
"""

import numpy as np

from .jit import jit


@jit
def transform_input(x, pad, th, tw, V):
    """V (16, S): B^T d B of every 4x4 input patch d; x (N, C, H, W).

    Row xi of V holds the matrix (C, T), T = N*th*tw, flat: V[xi, c*T + t] (S >= C*T).

    Each plane is first copied into a zero plane (2*th + 2, 2*tw + 2) at (pad, pad), so that
    every patch is read without bounds checks. Per row of tiles: r = B^T (the four plane
    rows), whole rows at a time; then each tile's columns of r times B.
    """
    N, C, H, W = x.shape
    T, Wp = N * th * tw, 2 * tw + 2
    plane = np.zeros((2 * th + 2, Wp), dtype=x.dtype)
    r = np.empty((4, Wp), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    plane[h + pad, w + pad] = x[n, c, h, w]
            for ty in range(th):
                p0, p1, p2, p3 = (
                    plane[2 * ty],
                    plane[2 * ty + 1],
                    plane[2 * ty + 2],
                    plane[2 * ty + 3],
                )
                for w in range(Wp):  # r = B^T (rows 2ty .. 2ty+3)
                    r[0, w] = p0[w] - p2[w]
                    r[1, w] = p1[w] + p2[w]
                    r[2, w] = p2[w] - p1[w]
                    r[3, w] = p1[w] - p3[w]
                t0 = c * T + (n * th + ty) * tw
                for i in range(4):  # V = r B, tile by tile (columns 2tx .. 2tx+3)
                    ri = r[i]
                    for tx in range(tw):
                        a, b, c2, d = ri[2 * tx], ri[2 * tx + 1], ri[2 * tx + 2], ri[2 * tx + 3]
                        V[4 * i + 0, t0 + tx] = a - c2
                        V[4 * i + 1, t0 + tx] = b + c2
                        V[4 * i + 2, t0 + tx] = c2 - b
                        V[4 * i + 3, t0 + tx] = b - d
    return V


@jit
def transform_output(M, th, tw, Y):
    """Y (F, N, H_out, W_out): A^T m A of every tile's 4x4 m; M (16, S) holds (F, T) per row.

    Per tile: s = A^T m (two rows of four), then the tile's 2x2 outputs s A, written into
    the row of tiles' two output rows (a buffer 2*tw wide), which are copied to Y cropped:
    odd sizes crop the last tile's row or column.
    """
    F, N, H_out, W_out = Y.shape
    T = N * th * tw
    row = np.empty((2, 2 * tw), dtype=M.dtype)
    m0, m1, m2, m3, m4, m5, m6, m7 = M[0], M[1], M[2], M[3], M[4], M[5], M[6], M[7]
    m8, m9, m10, m11, m12, m13, m14, m15 = M[8], M[9], M[10], M[11], M[12], M[13], M[14], M[15]
    for f in range(F):
        for n in range(N):
            for ty in range(th):
                t0 = f * T + (n * th + ty) * tw
                for tx in range(tw):
                    t = t0 + tx  # s = A^T m: rows m0-3 + m4-7 + m8-11, and m4-7 - m8-11 - m12-15
                    s00, s01 = m0[t] + m4[t] + m8[t], m1[t] + m5[t] + m9[t]
                    s02, s03 = m2[t] + m6[t] + m10[t], m3[t] + m7[t] + m11[t]
                    s10, s11 = m4[t] - m8[t] - m12[t], m5[t] - m9[t] - m13[t]
                    s12, s13 = m6[t] - m10[t] - m14[t], m7[t] - m11[t] - m15[t]
                    row[0, 2 * tx] = s00 + s01 + s02  # y = s A
                    row[0, 2 * tx + 1] = s01 - s02 - s03
                    row[1, 2 * tx] = s10 + s11 + s12
                    row[1, 2 * tx + 1] = s11 - s12 - s13
                for i in range(2):
                    oh = 2 * ty + i
                    if oh < H_out:
                        for w in range(W_out):
                            Y[f, n, oh, w] = row[i, w]
    return Y


@jit
def transform_output_adjoint(dY, th, tw, U):
    """U (16, S) = A dy A^T of every tile's 2x2 dy, (F, T) per row; dY (F, N, H_out, W_out).

    The gradient of transform_output(): outputs past an odd edge count as zero (the two
    rows of a row of tiles are first copied into a zero row buffer 2*tw wide).
    """
    F, N, H_out, W_out = dY.shape
    T = N * th * tw
    row = np.zeros((2, 2 * tw), dtype=dY.dtype)
    for f in range(F):
        for n in range(N):
            for ty in range(th):
                for i in range(2):
                    oh = 2 * ty + i
                    for w in range(W_out):
                        row[i, w] = dY[f, n, oh, w] if oh < H_out else 0.0
                t0 = f * T + (n * th + ty) * tw
                for tx in range(tw):  # r = dy A^T (columns), then U = A r (rows)
                    t = t0 + tx
                    a0, b0 = row[0, 2 * tx], row[0, 2 * tx + 1]  # r[0] = (a0, a0+b0, a0-b0, -b0)
                    a1, b1 = row[1, 2 * tx], row[1, 2 * tx + 1]  # r[1] = (a1, a1+b1, a1-b1, -b1)
                    U[0, t], U[4, t], U[8, t], U[12, t] = a0, a0 + a1, a0 - a1, -a1
                    c0, c1 = a0 + b0, a1 + b1
                    U[1, t], U[5, t], U[9, t], U[13, t] = c0, c0 + c1, c0 - c1, -c1
                    c0, c1 = a0 - b0, a1 - b1
                    U[2, t], U[6, t], U[10, t], U[14, t] = c0, c0 + c1, c0 - c1, -c1
                    U[3, t], U[7, t], U[11, t], U[15, t] = -b0, -b0 - b1, b1 - b0, b1
    return U


@jit
def transform_input_adjoint(dV, pad, th, tw, dx):
    """dx (N, C, H, W) = the sum over tiles of B dv B^T, each added where its patch was read.

    The gradient of transform_input(): dV (16, S) holds (C, T) per row. Patches overlap by
    two pixels (tile tx covers plane columns 2tx .. 2tx+3), so each plane is accumulated in
    a padded zero plane first and its interior copied to dx. The plane is kept with its even
    and odd columns apart (column 2u + k at P[k, :, u]), so that every loop is unit-stride:
    per row of tiles, e = dv B^T of every tile goes to A[j, i, u], j its column in the tile
    (at u = tx for j < 2, u = tx + 1 for j >= 2), then the plane's four rows += B (A[k] +
    A[k + 2]) for both parities k.
    """
    N, C, H, W = dx.shape
    T, U = N * th * tw, tw + 1
    P = np.empty((2, 2 * th + 2, U), dtype=dx.dtype)
    A = np.zeros((4, 4, U), dtype=dx.dtype)  # A[0:2, :, tw] and A[2:4, :, 0] stay 0
    for n in range(N):
        for c in range(C):
            P[:] = 0
            for ty in range(th):
                t0 = c * T + (n * th + ty) * tw
                for i in range(4):  # e = dv B^T, row i of every tile
                    for tx in range(tw):
                        t = t0 + tx
                        v0, v1 = dV[4 * i, t], dV[4 * i + 1, t]
                        v2, v3 = dV[4 * i + 2, t], dV[4 * i + 3, t]
                        A[0, i, tx] = v0
                        A[1, i, tx] = v1 - v2 + v3
                        A[2, i, tx + 1] = v1 + v2 - v0
                        A[3, i, tx + 1] = -v3
                h0 = 2 * ty
                for k in range(2):  # B e, added into plane rows 2ty .. 2ty+3
                    for u in range(U):
                        g0 = A[k, 0, u] + A[k + 2, 0, u]
                        g1 = A[k, 1, u] + A[k + 2, 1, u]
                        g2 = A[k, 2, u] + A[k + 2, 2, u]
                        g3 = A[k, 3, u] + A[k + 2, 3, u]
                        P[k, h0, u] += g0
                        P[k, h0 + 1, u] += g1 - g2 + g3
                        P[k, h0 + 2, u] += g1 + g2 - g0
                        P[k, h0 + 3, u] -= g3
            for h in range(H):
                for w in range(W):
                    col = w + pad
                    dx[n, c, h, w] = P[col & 1, h + pad, col >> 1]
    return dx
