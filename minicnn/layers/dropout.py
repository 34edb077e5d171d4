"""Dropout: zero a random fraction of activations while training (inverted dropout)."""

import numpy as np

from .base import Layer, as_rng


class Dropout(Layer):
    """Inverted dropout: out = x * mask / (1 - rate) in training; out = x in evaluation.

    mask is 1 with probability 1 - rate and 0 otherwise, per element, drawn from the
    layer's own generator (rng: numpy Generator or int seed); rate, in [0, 1), is the
    fraction dropped.
    Shape: x any shape; out and dx the same. Backward: dx = dout * mask / (1 - rate).
    """

    def __init__(self, rate, rng=None):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.rng = as_rng(rng)

    def config(self):
        return dict(rate=self.rate)

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self.cache = (None,)  # the identity: nothing dropped
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        self.cache = (mask,)
        return x * mask

    def backward(self, dout, input_grad=True):
        (mask,) = self.saved()
        if not input_grad:
            return None
        return dout if mask is None else dout * mask
