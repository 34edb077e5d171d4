"""BatchNorm's batch statistics and its backward, over the convolution's product.

Y is (F, N, H, Wr): channel-major, as the convolution's matrix multiply gives it, so that each
channel's values are one contiguous block; only the first W columns of a row are values
(see kernels/fused.py). Sums are kept in float64 whatever the dtype of Y: a channel of a
batch holds up to millions of values, and float32 sums of that many lose digits.
minicnn/fast/batchnorm.py calls these; tests/test_fast.py holds the result to BatchNorm2D.
"""

from .jit import jit


@jit
def channel_stats(Y, W, mean, var):
    """mean[f] and the biased variance var[f] of Y[f, :, :, :W]; two passes per channel.

    Y: (F, N, H, Wr); mean, var: (F,). var = sum((y - mean)^2) / m, m = N*H*W.
    """
    F, N, H = Y.shape[0], Y.shape[1], Y.shape[2]
    m = N * H * W
    for f in range(F):
        total = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    total += Y[f, n, h, w]
        mu = total / m
        sq = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    d = Y[f, n, h, w] - mu
                    sq += d * d
        mean[f] = mu
        var[f] = sq / m
    return mean


@jit
def batchnorm_backward(dZ, Y, W, mean, std, gamma, dbeta, dgamma):
    """In place: dZ, the gradient w.r.t. BatchNorm's output, becomes the gradient w.r.t. Y.

    dZ, Y: (F, N, H, Wr), zeros in dZ's columns >= W stay zero; mean, std, gamma, dbeta
    (= sum of dZ per channel), dgamma (output): (F,). With xhat = (Y - mean) / std, m = N*H*W:
        dgamma = sum(dZ * xhat)
        dY = gamma / std * (dZ - (dbeta + xhat * dgamma) / m)
    """
    F, N, H = dZ.shape[0], dZ.shape[1], dZ.shape[2]
    m = N * H * W
    for f in range(F):
        mu, s = mean[f], std[f]
        acc = 0.0
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    acc += dZ[f, n, h, w] * (Y[f, n, h, w] - mu)
        dg = acc / s
        dgamma[f] = dg
        k, db = gamma[f] / s, dbeta[f]
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    xhat = (Y[f, n, h, w] - mu) / s
                    dZ[f, n, h, w] = k * (dZ[f, n, h, w] - (db + xhat * dg) / m)
    return dZ
