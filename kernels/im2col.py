"""im2col / col2im: turn a convolution into a matrix multiply.

Layout: x is (N, C, H, W): the whole batch from Conv2D, a chunk of a few images from the
fast engine (minicnn/fast/conv.py, so that cols stays in cache); cols is
(C*KH*KW, N*H_out*W_out), so that
`Y = W.reshape(F, C*KH*KW) @ cols` is one matrix multiply giving (F, N*H_out*W_out).
Row index of cols: c*KH*KW + i*KW + j (the same order as W.reshape(F, -1)).
Column index: n*H_out*W_out + oh*W_out + ow. Zero padding is applied on the fly.
The stride-1 variants below use rows Wp = W + 2*pad wide instead of W_out (see there).
"""

import numpy as np

from .jit import jit


@jit
def im2col(x, kh, kw, stride, pad, out_h, out_w, cols):
    """Fill cols (C*kh*kw, N*out_h*out_w) from x (N, C, H, W).

    Image n writes only the columns n*out_h*out_w ... (n+1)*out_h*out_w - 1, so slices of
    the batch can run on separate threads (minicnn/fast/threads.py: parallel_for).
    (A version that precomputes the valid column range and copies slices measured slower:
    LLVM vectorises this plain loop with its bounds test better.)
    """
    N, C, H, W = x.shape
    hw = out_h * out_w
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oh in range(out_h):
                        h = oh * stride - pad + i
                        base = n * hw + oh * out_w
                        if h < 0 or h >= H:
                            for ow in range(out_w):
                                cols[row, base + ow] = 0
                            continue
                        for ow in range(out_w):
                            w = ow * stride - pad + j
                            if w < 0 or w >= W:
                                cols[row, base + ow] = 0
                            else:
                                cols[row, base + ow] = x[n, c, h, w]
    return cols


@jit
def col2im(cols, kh, kw, stride, pad, dx):
    """Scatter-add cols (C*kh*kw, N*out_h*out_w) back into dx (N, C, H, W), zeroed first.

    Overlapping windows add up. Image n adds only into dx[n], so threads given separate
    slices of the batch never add into the same element (no race).
    """
    N, C, H, W = dx.shape
    out_h = (H + 2 * pad - kh) // stride + 1
    out_w = (W + 2 * pad - kw) // stride + 1
    hw = out_h * out_w
    for n in range(N):
        dx[n] = 0
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    for oh in range(out_h):
                        h = oh * stride - pad + i
                        if h < 0 or h >= H:
                            continue
                        base = n * hw + oh * out_w
                        for ow in range(out_w):
                            w = ow * stride - pad + j
                            if w >= 0 and w < W:
                                dx[n, c, h, w] += cols[row, base + ow]
    return dx


# ---------------------------------------------------------------- stride 1: shifted copies
#
# For a stride-1 convolution, pad the images once and keep the padded width Wp for the
# output too: then row (c, i, j) of cols is one contiguous run of the padded plane, starting
# at i*Wp + j, and im2col is a set of plain copies. Each output row gains kw - 1 extra
# positions (ow >= W_out) that read across the row's end; they are computed and ignored.


@jit
def im2col_s1(x, kh, kw, pad, out_h, cols):
    """cols (C*kh*kw, N*out_h*Wp) for stride 1, Wp = W + 2*pad.

    Each plane x[n, c] is copied into a zero-padded plane (with one spare zero row below);
    row (c, i, j) of image n is then the padded plane, flat, from i*Wp + j on: one
    contiguous copy.
    """
    N, C, H, W = x.shape
    Wp = W + 2 * pad
    L = out_h * Wp
    plane = np.zeros((H + 2 * pad + 1) * Wp, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H):
                base = (h + pad) * Wp + pad
                for w in range(W):
                    plane[base + w] = x[n, c, h, w]
            for i in range(kh):
                for j in range(kw):
                    start = i * Wp + j
                    dst = cols[(c * kh + i) * kw + j]
                    for q in range(L):  # a plain loop: faster than a slice copy here
                        dst[n * L + q] = plane[start + q]
    return cols


@jit
def col2im_s1(dcols, kh, kw, pad, out_h, dx):
    """dx (N, C, H, W) = the sum of the shifted rows of dcols (C*kh*kw, N*out_h*Wp), cropped.

    The adjoint of im2col_s1: each row is added back where it was copied from,
    into a padded plane, whose interior is then copied to dx. Image n writes only dx[n].
    """
    N, C, H, W = dx.shape
    Wp = W + 2 * pad
    L = out_h * Wp
    plane = np.empty((H + 2 * pad + 1) * Wp, dtype=dx.dtype)
    for n in range(N):
        for c in range(C):
            plane[:] = 0
            for i in range(kh):
                for j in range(kw):
                    row = (c * kh + i) * kw + j
                    start = i * Wp + j
                    for q in range(L):
                        plane[start + q] += dcols[row, n * L + q]
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = plane[(h + pad) * Wp + w + pad]
    return dx
