"""Plain-NumPy references for the Numba kernels and layers (as in stumpy's tests/naive.py).

Written for clarity, not speed: loops and padding copies that follow the definitions.
"""

import numpy as np


def conv2d(x, W, b, stride, pad):
    """Direct convolution. x (N, C, H, W), W (F, C, k, k) -> (N, F, H_out, W_out)."""
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (Wd + 2 * pad - k) // stride + 1
    out = np.empty((N, F, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def im2col(x, k, stride, pad):
    """(N, C, H, W) -> (C*k*k, N*H_out*W_out), rows ordered c, i, j; columns n, oh, ow."""
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (W + 2 * pad - k) // stride + 1
    cols = np.empty((N, C, k, k, H_out, W_out), dtype=x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[
                :, :, i : i + stride * H_out : stride, j : j + stride * W_out : stride
            ]
    return cols.reshape(N, C * k * k, H_out * W_out).transpose(1, 0, 2).reshape(C * k * k, -1)


def col2im(cols, N, C, H, W, k, stride, pad):
    """Adjoint of im2col: scatter-add (C*k*k, N*H_out*W_out) into (N, C, H, W)."""
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (W + 2 * pad - k) // stride + 1
    cols = cols.reshape(C, k, k, N, H_out, W_out).transpose(3, 0, 1, 2, 4, 5)
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i : i + stride * H_out : stride, j : j + stride * W_out : stride] += cols[
                :, :, i, j
            ]
    return xp[:, :, pad : pad + H, pad : pad + W]


def maxpool(x, pool, stride):
    """Returns out (N, C, H_out, W_out) and dx_of(dout) for the max-pool backward."""
    N, C, H, W = x.shape
    H_out = (H - pool) // stride + 1
    W_out = (W - pool) // stride + 1
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    where = {}
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    win = x[n, c, i * stride : i * stride + pool, j * stride : j * stride + pool]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    out[n, c, i, j] = win[a, b]
                    where[n, c, i, j] = (i * stride + a, j * stride + b)

    def backward(dout):
        dx = np.zeros_like(x, dtype=dout.dtype)
        for (n, c, i, j), (h, w) in where.items():
            dx[n, c, h, w] += dout[n, c, i, j]
        return dx

    return out, backward


def adam(p, grads, lr, b1, b2, eps):
    """Adam written from the paper's Algorithm 1, one step per gradient in grads."""
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return p


# Winograd F(2x2, 3x3) (kernels/winograd.py), straight from the matrices.
WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], float)
WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], float)


def winograd_tiles(x, pad):
    """(N, C, th, tw, 4, 4): the 4x4 patch of every tile of the zero-padded x, at (2ty, 2tx)."""
    N, C, H, W = x.shape
    th, tw = (H + 2 * pad - 1) // 2, (W + 2 * pad - 1) // 2  # = ceil(H_out / 2)
    xp = np.zeros((N, C, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    xp[:, :, pad : pad + H, pad : pad + W] = x
    tiles = np.empty((N, C, th, tw, 4, 4), dtype=x.dtype)
    for ty in range(th):
        for tx in range(tw):
            tiles[:, :, ty, tx] = xp[:, :, 2 * ty : 2 * ty + 4, 2 * tx : 2 * tx + 4]
    return tiles


def winograd_input(x, pad):
    """V (16, C, N*th*tw) = B^T d B of every tile d."""
    tiles = winograd_tiles(x, pad)
    N, C, th, tw = tiles.shape[:4]
    V = WINOGRAD_BT @ tiles @ WINOGRAD_BT.T  # (N, C, th, tw, 4, 4)
    return V.transpose(4, 5, 1, 0, 2, 3).reshape(16, C, N * th * tw).astype(x.dtype)


def winograd_output(M, N, th, tw, H_out, W_out):
    """Y (F, N, H_out, W_out) from M (16, F, N*th*tw): A^T m A per tile, cropped."""
    F = M.shape[1]
    m = M.reshape(4, 4, F, N, th, tw).transpose(2, 3, 4, 5, 0, 1)
    y = WINOGRAD_AT @ m @ WINOGRAD_AT.T  # (F, N, th, tw, 2, 2)
    Y = y.transpose(0, 1, 2, 4, 3, 5).reshape(F, N, 2 * th, 2 * tw)
    return Y[:, :, :H_out, :W_out].astype(M.dtype)


def winograd_weights(W):
    """U (16, F, C) = G g G^T of every 3x3 kernel of W (F, C, 3, 3)."""
    F, C = W.shape[:2]
    U = WINOGRAD_G @ W @ WINOGRAD_G.T  # (F, C, 4, 4)
    return U.transpose(2, 3, 0, 1).reshape(16, F, C).astype(W.dtype)


def scale_shift(Y, W, scale, shift):
    """(N, F, H, W) = Y[f, n, :, :W] * scale[f] + shift[f], from Y (F, N, H, Wr) channel-major."""
    return Y[..., :W].transpose(1, 0, 2, 3) * scale[:, None, None] + shift[:, None, None]


def add_relu(z, skip):
    """A residual block's sum and ReLU, as the layer writes them: (out, the mask out > 0)."""
    out = np.maximum(z + skip, 0)
    return out, out > 0
