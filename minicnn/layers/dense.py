"""Dense (fully connected) layer and Flatten."""

import numpy as np

from ..parameter import Parameter
from .base import Layer, ShapeError, as_rng, expect_ndim


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), keeping the batch axis; backward reshapes back."""

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        self.cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, input_grad=True):
        x_shape = self.saved()
        return dout.reshape(x_shape) if input_grad else None


class Dense(Layer):
    """Fully connected: out = x @ W + b.

    Args: in_features, out_features, rng (numpy Generator or int seed), init: "he"
    (normal, std = sqrt(2 / in_features)) or "glorot" (uniform in +-sqrt(6 / (in + out))).

    Shape:
        x: (N, in_features) -> out: (N, out_features)
        W: (in_features, out_features), b: (out_features,)
    Backward: dW = x.T @ dout ; db = dout summed over N ; dx = dout @ W.T
    """

    def __init__(self, in_features, out_features, rng=None, init="he"):
        self.in_features = in_features
        self.out_features = out_features
        self.init = init
        rng = as_rng(rng)
        if init == "he":
            W = rng.standard_normal((in_features, out_features)) * np.sqrt(2.0 / in_features)
        elif init == "glorot":
            limit = np.sqrt(6.0 / (in_features + out_features))
            W = rng.uniform(-limit, limit, (in_features, out_features))
        else:
            raise ValueError(f'init must be "he" or "glorot", got {init!r}')
        self.W = Parameter(W.astype(np.float32))
        self.b = Parameter(np.zeros(out_features, dtype=np.float32))

    def parameters(self):
        return [self.W, self.b]

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, init=self.init)

    def __repr__(self):
        return f"Dense({self.in_features} -> {self.out_features})"

    def output_shape(self, input_shape):
        if tuple(input_shape) != (self.in_features,):
            raise ShapeError(
                f"{self!r} expects {self.in_features} features, got {tuple(input_shape)}"
            )
        return (self.out_features,)

    def forward(self, x, training=False):
        expect_ndim(self, x, 2, f"(N, {self.in_features})")
        self.output_shape(x.shape[1:])
        self.cache = x
        return x @ self.W.data.astype(x.dtype, copy=False) + self.b.data.astype(x.dtype)

    def backward(self, dout, input_grad=True):
        x = self.saved()
        self.W.grad = (x.T @ dout).astype(self.W.data.dtype, copy=False)  # (in, out)
        self.b.grad = dout.sum(axis=0).astype(self.b.data.dtype, copy=False)  # (out,)
        if not input_grad:
            return None
        return dout @ self.W.data.astype(dout.dtype, copy=False).T
