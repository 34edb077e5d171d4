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
that every inner loop runs over tx (or over a row) with no dependence between iterations,
and vectorises.
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

    Per row of tiles: s = A^T m for every tile (two rows of four), then the two output rows
    s A, built in a row buffer 2*tw wide and copied to Y cropped (odd sizes crop the last
    tile's row or column).
    """
    F, N, H_out, W_out = Y.shape
    T = N * th * tw
    row = np.empty((2, 2 * tw), dtype=M.dtype)
    s = np.empty((2, 4, tw), dtype=M.dtype)
    for f in range(F):
        for n in range(N):
            for ty in range(th):
                t0 = f * T + (n * th + ty) * tw
                for j in range(4):  # s = A^T m (rows)
                    for tx in range(tw):
                        m1, m2 = M[4 + j, t0 + tx], M[8 + j, t0 + tx]
                        s[0, j, tx] = M[j, t0 + tx] + m1 + m2
                        s[1, j, tx] = m1 - m2 - M[12 + j, t0 + tx]
                for i in range(2):  # y = s A (columns)
                    for tx in range(tw):
                        row[i, 2 * tx] = s[i, 0, tx] + s[i, 1, tx] + s[i, 2, tx]
                        row[i, 2 * tx + 1] = s[i, 1, tx] - s[i, 2, tx] - s[i, 3, tx]
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
    two pixels, so each plane is accumulated in a padded zero plane first and its interior
    copied to dx.
    Per row of tiles: e = dv B^T of every tile, added across the row of tiles into four
    rows E (tile tx writes columns 2tx .. 2tx+3); then the plane rows 2ty .. 2ty+3 += B E.
    """
    N, C, H, W = dx.shape
    T, Wp = N * th * tw, 2 * tw + 2
    plane = np.empty((2 * th + 2, Wp), dtype=dx.dtype)
    E = np.empty((4, Wp), dtype=dx.dtype)
    for n in range(N):
        for c in range(C):
            plane[:] = 0
            for ty in range(th):
                t0 = c * T + (n * th + ty) * tw
                E[:] = 0
                for i in range(4):  # E[i] = the rows i of every tile's dv B^T, overlapped
                    v0, v1, v2, v3 = (
                        dV[4 * i],
                        dV[4 * i + 1],
                        dV[4 * i + 2],
                        dV[4 * i + 3],
                    )
                    for tx in range(tw):  # columns 0 and 1 of tile tx
                        E[i, 2 * tx] += v0[t0 + tx]
                        E[i, 2 * tx + 1] += v1[t0 + tx] - v2[t0 + tx] + v3[t0 + tx]
                    for tx in range(tw):  # columns 2 and 3 of tile tx
                        E[i, 2 * tx + 2] += v1[t0 + tx] + v2[t0 + tx] - v0[t0 + tx]
                        E[i, 2 * tx + 3] -= v3[t0 + tx]
                for w in range(Wp):  # B E (rows), added into plane rows 2ty .. 2ty+3
                    plane[2 * ty, w] += E[0, w]
                    plane[2 * ty + 1, w] += E[1, w] - E[2, w] + E[3, w]
                    plane[2 * ty + 2, w] += E[1, w] + E[2, w] - E[0, w]
                    plane[2 * ty + 3, w] -= E[3, w]
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = plane[h + pad, w + pad]
    return dx
