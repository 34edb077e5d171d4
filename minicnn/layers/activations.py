"""Elementwise and per-row nonlinearities: ReLU, Sigmoid, Softmax."""

import numpy as np

from .base import Layer, expect_ndim


class ReLU(Layer):
    """y = max(x, 0); dx = dout where x > 0, else 0. Any shape."""

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
    """y = 1 / (1 + exp(-x)); dx = dout * y * (1 - y). Any shape."""

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
    """Softmax over axis 1: x (N, K) -> y (N, K), rows sum to 1.

    dx = y * (dout - sum_k dout_k y_k). For training, use SoftmaxCrossEntropy on the
    logits instead: it fuses this layer and the loss into the stabler y - onehot.
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
