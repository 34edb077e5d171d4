"""The plain-NumPy baseline: the paper network written the CS231n way, no Numba.

im2col by fancy indexing (CS231n's get_im2col_indices), one np.dot per layer, col2im by
np.add.at, 2x2 max pool by reshape, Adam in NumPy. This is how from-scratch teaching code
usually trains a CNN; benchmarks/bench.py times minicnn and PyTorch against it. Weights
are copied from a minicnn model, so the three compute the same function.
"""

import numpy as np


def im2col_indices(C, H, W, k, pad, stride):
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (W + 2 * pad - k) // stride + 1
    i0 = np.tile(np.repeat(np.arange(k), k), C)
    i1 = stride * np.repeat(np.arange(H_out), W_out)
    j0 = np.tile(np.arange(k), k * C)
    j1 = stride * np.tile(np.arange(W_out), H_out)
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)  # (C*k*k, H_out*W_out)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    c = np.repeat(np.arange(C), k * k).reshape(-1, 1)
    return c, i, j, H_out, W_out


class Conv:
    def __init__(self, W, b, pad=1):
        self.W, self.b, self.pad = W.copy(), b.copy(), pad

    def params(self):
        return [self.W, self.b]

    def forward(self, x):
        N, C, H, W = x.shape
        F, _, k, _ = self.W.shape
        p = self.pad
        self.idx = im2col_indices(C, H, W, k, p, 1)
        c, i, j, H_out, W_out = self.idx
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        cols = xp[:, c, i, j]  # (N, C*k*k, H_out*W_out)
        self.cols = cols.transpose(1, 2, 0).reshape(C * k * k, -1)  # (C*k*k, H'*W'*N)
        self.x_shape = x.shape
        out = self.W.reshape(F, -1) @ self.cols + self.b[:, None]  # (F, H'*W'*N)
        return out.reshape(F, H_out, W_out, N).transpose(3, 0, 1, 2)

    def backward(self, dout):
        F = self.W.shape[0]
        N, C, H, W = self.x_shape
        p = self.pad
        d = dout.transpose(1, 2, 3, 0).reshape(F, -1)  # (F, H'*W'*N)
        self.db = d.sum(axis=1)
        self.dW = (d @ self.cols.T).reshape(self.W.shape)
        dcols = self.W.reshape(F, -1).T @ d  # (C*k*k, H'*W'*N)
        c, i, j, _, _ = self.idx
        dxp = np.zeros((N, C, H + 2 * p, W + 2 * p), dtype=dout.dtype)
        dcols = dcols.reshape(C * self.W.shape[2] ** 2, -1, N).transpose(2, 0, 1)
        np.add.at(dxp, (slice(None), c, i, j), dcols)
        return dxp[:, :, p : p + H, p : p + W]

    def grads(self):
        return [self.dW, self.db]


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Pool2:
    """2x2 max pool, stride 2, by reshape (H and W even)."""

    def forward(self, x):
        N, C, H, W = x.shape
        r = x.reshape(N, C, H // 2, 2, W // 2, 2)
        out = r.max(axis=(3, 5))
        self.mask = r == out[:, :, :, None, :, None]
        self.x_shape = x.shape
        return out

    def backward(self, dout):
        d = self.mask * dout[:, :, :, None, :, None]
        return d.reshape(self.x_shape)


class Linear:
    def __init__(self, W, b):
        self.W, self.b = W.copy(), b.copy()

    def params(self):
        return [self.W, self.b]

    def forward(self, x):
        self.x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return self.x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.x_shape)

    def grads(self):
        return [self.dW, self.db]


class Dropout:
    def __init__(self, rate, seed=0):
        self.rate, self.rng = rate, np.random.default_rng(seed)

    def forward(self, x, training):
        if not training:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape, dtype=np.float32) >= self.rate) / np.float32(
            1 - self.rate
        )
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


class NumpyNet:
    """Mirror of a minicnn Sequential built from Conv2D/ReLU/MaxPool2D/Dropout/Flatten/Dense."""

    def __init__(self, model):
        self.layers = []
        for layer in model:
            name = type(layer).__name__
            if name == "Conv2D":
                self.layers.append(Conv(layer.W.data, layer.b.data, layer.pad))
            elif name == "Dense":
                self.layers.append(Linear(layer.W.data, layer.b.data))
            elif name == "ReLU":
                self.layers.append(ReLU())
            elif name == "MaxPool2D":
                self.layers.append(Pool2())
            elif name == "Dropout":
                self.layers.append(Dropout(layer.rate))
            # Flatten is folded into Linear
        self.params = [p for lay in self.layers if hasattr(lay, "params") for p in lay.params()]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, x, training=False):
        for lay in self.layers:
            x = lay.forward(x, training) if isinstance(lay, Dropout) else lay.forward(x)
        return x

    def train_step(self, x, y, lr=1e-4):
        logits = self.forward(x, training=True)
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        N = len(y)
        loss = -np.log(probs[np.arange(N), y]).mean()
        d = probs
        d[np.arange(N), y] -= 1
        d /= N
        for lay in reversed(self.layers):
            d = lay.backward(d)
        grads = [g for lay in self.layers if hasattr(lay, "grads") for g in lay.grads()]
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + eps)
        return float(loss)
