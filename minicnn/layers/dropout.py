"""Dropout: zero a random fraction of activations while training (inverted dropout)."""

import numpy as np

from .base import Layer, as_rng


class Dropout(Layer):
    """Drops each element with probability `rate` and scales the rest by 1 / (1 - rate).

    `rate` is the fraction dropped (the paper's 0.2; its "0.8" is TensorFlow 1's
    keep_prob). Because of the scaling, evaluation (training=False) is the identity.
    The mask comes from the layer's own seeded generator. Any shape.
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
