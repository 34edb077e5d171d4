"""Elementwise and per-row nonlinearities: ReLU, Sigmoid, Softmax."""

import numpy as np

from .base import Layer, expect_ndim


class ReLU(Layer):
    """out = max(x, 0); backward: dx = dout * (x > 0).

    Shape: x any shape; out and dx the same.
    """

    def forward(self, x, training=False):
        self.cache = x > 0
        return np.maximum(x, 0)

    def backward(self, dout, input_grad=True):
        positive = self.saved()
        return dout * positive if input_grad else None


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)); backward: dx = dout * out * (1 - out).

    Shape: x any shape; out and dx the same.
    """

    def forward(self, x, training=False):
        y = self.cache = sigmoid(x).astype(x.dtype, copy=False)
        return y

    def backward(self, dout, input_grad=True):
        y = self.saved()
        return dout * y * (1 - y) if input_grad else None


def softmax(x, axis=1):
    """exp(x) / sum(exp(x)) along axis, shifted by the max so it never overflows."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class Softmax(Layer):
    """Softmax over axis 1: out[n, k] = exp(x[n, k]) / sum_j exp(x[n, j]).

    Shape: x (N, K) -> out (N, K), each row sums to 1.
    Backward: dx = out * (dout - sum_k dout[:, k] * out[:, k]), the sum per row.
    """

    def forward(self, x, training=False):
        expect_ndim(self, x, 2, "logits (N, K)")
        y = self.cache = softmax(x, axis=1)
        return y

    def backward(self, dout, input_grad=True):
        y = self.saved()
        if not input_grad:
            return None
        return y * (dout - (dout * y).sum(axis=1, keepdims=True))
