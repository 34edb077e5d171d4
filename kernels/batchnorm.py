"""BatchNorm's batch statistics and its backward, over the convolution's product.

Y is (F, N, H, Wr): channel-major, as the convolution's matrix multiply gives it, so that each
channel's values are one contiguous block; only the first W columns of a row are values
(see kernels/fused.py). Sums are kept in float64 whatever the dtype of Y: a channel of a
batch holds up to millions of values, and float32 sums of that many lose digits.
minicnn/fast/batchnorm.py calls these; tests/test_fast.py holds the result to BatchNorm2D.
"""

import numpy as np

from .jit import jit


@jit
def channel_stats(Y, W, mean, var):
    """mean[f] and the biased variance var[f] of Y[f, :, :, :W]; two passes per channel.

    Y: (F, N, H, Wr); mean, var: (F,). var = sum((y - mean)^2) / m, m = N*H*W.
    Each column w keeps its own running sum (acc[w]), added up at the end: the additions
    are independent across w, so they vectorise (one long chain of float64 additions would
    wait on each other's latency: measured 4x slower).
    """
    F, N, H = Y.shape[0], Y.shape[1], Y.shape[2]
    m = N * H * W
    acc = np.empty(W)  # float64
    for f in range(F):
        acc[:] = 0.0
        for n in range(N):
            for h in range(H):
                row = Y[f, n, h]
                for w in range(W):
                    acc[w] += row[w]
        mu = acc.sum() / m
        acc[:] = 0.0
        for n in range(N):
            for h in range(H):
                row = Y[f, n, h]
                for w in range(W):
                    d = row[w] - mu
                    acc[w] += d * d
        mean[f] = mu
        var[f] = acc.sum() / m
    return mean


@jit
def dgamma_sums(dZ, Y, W, mean, std, dgamma):
    """dgamma[f] = sum(dZ * xhat) over Y[f, :, :, :W], xhat = (Y - mean) / std.

    dZ, Y: (F, N, H, Wr); mean, std, dgamma (output): (F,). Per-column sums, as channel_stats.
    """
    F, N, H = dZ.shape[0], dZ.shape[1], dZ.shape[2]
    acc = np.empty(W)
    for f in range(F):
        mu = mean[f]
        acc[:] = 0.0
        for n in range(N):
            for h in range(H):
                g, y = dZ[f, n, h], Y[f, n, h]
                for w in range(W):
                    acc[w] += g[w] * (y[w] - mu)
        dgamma[f] = acc.sum() / std[f]
    return dgamma


@jit
def batchnorm_backward(dZ, Y, n0, W, mean, std, gamma, dbeta, dgamma, m, dY):
    """dY, the gradient w.r.t. Y of images n0 .. n0+n-1, from dZ, the gradient w.r.t.
    BatchNorm's output.

    dZ, Y: (F, N, H, Wr), the whole batch; dY: (F, n, H, Wr), those n images (fast/
    batchnorm.py passes one chunk at a time, and dY is the chunk's buffer; whole arrays and
    an offset rather than slices, which would not be contiguous and would not vectorise);
    dY's columns >= W get 0. mean, std, gamma,
    dbeta (= sum of dZ per channel), dgamma (= dgamma_sums): (F,); m values per channel in
    the whole batch (N*H*W, or the global batch's count when the statistics are synced):
        dY = gamma / std * (dZ - (dbeta + xhat * dgamma) / m),  xhat = (Y - mean) / std
    """
    F, N, H, Wr = dY.shape
    for f in range(F):
        mu, s = mean[f], std[f]
        k, db, dg = gamma[f] / s, dbeta[f], dgamma[f]
        for n in range(N):
            for h in range(H):
                g, y, out = dZ[f, n0 + n, h], Y[f, n0 + n, h], dY[f, n, h]
                for w in range(W):
                    xhat = (y[w] - mu) / s
                    out[w] = k * (g[w] - (db + xhat * dg) / m)
                for w in range(W, Wr):
                    out[w] = 0
    return dY
