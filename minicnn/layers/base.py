"""Layer: the interface every layer follows, and the error it raises on a bad shape."""

import numpy as np


class ShapeError(ValueError):
    """An input does not have the shape a layer expects. The message names the layer."""


def output_shapes(layers, input_shape):
    """Per-sample shape after each of layers, from input_shape (C, H, W).

    A ShapeError carries .offset (the failing layer's index in layers) and .input (the
    shape it was given), so the caller can name the layer in the model.
    """
    shapes = [tuple(input_shape)]
    for offset, layer in enumerate(layers):
        try:
            shapes.append(tuple(layer.output_shape(shapes[-1])))
        except ShapeError as e:
            e.offset, e.input = offset, shapes[-1]
            raise
    return shapes[1:]


class Layer:
    """A step of the network with a forward rule and the backward rule beside it.

    forward(x, training=False) -> y      keeps what backward needs in self.cache
    backward(dout, input_grad=True) -> dx   writes each Parameter's .grad; returns dL/dx
                                         (None when input_grad is False)
    parameters() -> list[Parameter]
    output_shape(input_shape) -> per-sample output shape, e.g. (C, H, W) -> (F, H', W')

    self.cache holds the values of the last forward (None before any). backward reads them
    through saved(), which says clearly when there are none: in a model on the fast engine,
    a fused step computes a layer's output without calling its forward, and Sequential
    clears that layer's cache, so a later backward never uses the values of an earlier call.
    """

    cache = None

    def saved(self):
        """What the last forward kept for backward; an error naming the layer if nothing."""
        if self.cache is None:
            raise RuntimeError(
                f"{self!r}.backward() needs this layer's own forward() first; in a model on "
                "the fast engine, a fused block computed this layer's output instead (use "
                "model.backward(), or set model.fast = False to run each layer's own forward)"
            )
        return self.cache

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout, input_grad=True):
        raise NotImplementedError

    def parameters(self):
        return []

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def macs(self, input_shape):
        """Multiply-adds of forward for one image of input_shape (layers/cost.py counts)."""
        return 0

    def config(self):
        """The constructor arguments, as plain JSON values (used to save a model)."""
        return {}

    def astype(self, dtype):
        """Convert every parameter to dtype (float64 for gradient checks); returns self."""
        for p in self.parameters():
            p.astype(dtype)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def as_rng(rng):
    """A numpy Generator from a Generator, an int seed, or None (seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


def expect_ndim(layer, x, ndim, what):
    if x.ndim != ndim:
        raise ShapeError(f"{layer!r} expects {what}, got an array of shape {x.shape}")
