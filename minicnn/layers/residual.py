"""Residual: a block whose output adds its input back, out = relu(branch(x) + shortcut(x))."""

import numpy as np

from .base import Layer, ShapeError, output_shapes
from .cost import macs
from .nested import astype, parameters

PROBE = 64  # the height and width of the input the construction-time check tries


def _forward(layers, x, training):
    for layer in layers:
        x = layer.forward(x, training)
    return x


def _backward(layers, dout, input_grad):
    """The layers' backwards in reverse; the first one computes dx only if input_grad."""
    for i in reversed(range(len(layers))):
        dout = layers[i].backward(dout, input_grad=input_grad or i > 0)
    return dout


class Residual(Layer):
    """A residual block (He et al. 2016, ResNet v1): out = activation(branch(x) + shortcut(x)).

    Args:
        branch: a list of layers (or a Sequential), e.g. conv3x3 -> BatchNorm -> ReLU ->
            conv3x3 -> BatchNorm.
        shortcut: None for the identity, or a list of layers that maps x to the branch's
            output shape when the block changes it, e.g. Conv2D(C, F, 1, stride=s,
            bias=False) -> BatchNorm2D(F) (a projection).
        activation: "relu" (ResNet v1: after the sum) or None (the sum itself, as the
            pre-activation layout of He et al.'s second paper wants).

    Shape:
        x:   (N, C, H, W)
        out: (N, F, H', W'), the branch's output shape, which the shortcut's must equal

    Backward: the sum sends the same gradient g = dout * (out > 0) down both paths, and x
    feeds both, so dx = branch.backward(g) + shortcut.backward(g) (identity: g itself).
    That second term carries the gradient past the branch untouched, which is why deep
    stacks of blocks still train. The block keeps nothing of its own but the ReLU mask;
    each layer inside keeps what its backward needs.
    """

    CHILDREN = ("branch", "shortcut")  # attributes holding layers (see layers/nested.py)

    def __init__(self, branch, shortcut=None, activation="relu"):
        if activation not in ("relu", None):
            raise ValueError(f'activation must be "relu" or None, got {activation!r}')
        self.branch = list(getattr(branch, "layers", branch))  # a Sequential gives its list
        self.shortcut = None if shortcut is None else list(getattr(shortcut, "layers", shortcut))
        self.activation = activation
        if not self.branch or self.shortcut == []:
            raise ValueError("a Residual needs a branch of one layer or more, and a shortcut "
                             "of None (the identity) or one layer or more")  # fmt: skip
        channels = [getattr(lay, "in_channels", getattr(lay, "num_features", None))
                    for lay in self.branch]  # fmt: skip
        C = next((c for c in channels if c is not None), None)
        if C is not None:  # what does not depend on the image size is checked now
            try:
                shapes = self._paths((C, PROBE, PROBE))
            except ShapeError:  # a layer needs a given size: the first forward will tell
                return
            self._check(*shapes, f"an input of {C} channels, e.g. {(C, PROBE, PROBE)},")

    def parameters(self):
        return parameters(self.branch + (self.shortcut or []))

    def astype(self, dtype):
        astype(self.branch + (self.shortcut or []), dtype)
        return self

    def config(self):
        return {"activation": self.activation}

    def __repr__(self):
        shortcut = "identity" if self.shortcut is None else f"{len(self.shortcut)}-layer shortcut"
        act = "" if self.activation else ", no activation"
        return f"Residual({len(self.branch)}-layer branch + {shortcut}{act})"

    def _paths(self, input_shape):
        """The output shapes of the branch and of the shortcut for input_shape (C, H, W)."""
        return self._path("branch", input_shape), self._path("shortcut", input_shape)

    def _path(self, name, input_shape):
        layers = getattr(self, name) or []  # the identity: no layer
        try:
            return output_shapes(layers, input_shape)[-1] if layers else tuple(input_shape)
        except ShapeError as e:
            where = f"{name} layer #{e.offset} {layers[e.offset]!r}"
            raise ShapeError(f"{self!r}: {where} got input {e.input}: {e}") from None

    def _check(self, branch_out, shortcut_out, given):
        if branch_out != shortcut_out:
            kind = "the identity shortcut" if self.shortcut is None else "the shortcut"
            raise ShapeError(
                f"{self!r}: for {given} the branch gives {branch_out} but "
                f"{kind} gives {shortcut_out}; the two are added, so they must be equal (a "
                "shortcut Conv2D(C, F, 1, stride=s, bias=False) -> BatchNorm2D(F) matches "
                "a branch that changes channels or size)"
            )

    def output_shape(self, input_shape):
        branch_out, shortcut_out = self._paths(input_shape)
        self._check(branch_out, shortcut_out, f"an input {tuple(input_shape)}")
        return branch_out

    def macs(self, input_shape):
        """The multiply-adds of the layers inside (the sum and the ReLU count 0)."""
        total = 0
        for layers in (self.branch, self.shortcut or []):
            inputs = [tuple(input_shape)] + output_shapes(layers, input_shape)[:-1]
            total += sum(macs(layer, shape) for layer, shape in zip(layers, inputs))
        return total

    def forward(self, x, training=False):
        self.output_shape(x.shape[1:])  # a clear error before any arithmetic
        z = _forward(self.branch, x, training)  # (N, F, H', W')
        z = z + (x if self.shortcut is None else _forward(self.shortcut, x, training))
        out = np.maximum(z, 0) if self.activation == "relu" else z
        self.cache = (out > 0,) if self.activation == "relu" else (None,)
        return out

    def backward(self, dout, input_grad=True):
        (positive,) = self.saved()
        g = dout if positive is None else dout * positive  # dL/dz, z = branch + shortcut
        dx = _backward(self.branch, g, input_grad)
        dskip = g if self.shortcut is None else _backward(self.shortcut, g, input_grad)
        return dx + dskip if input_grad else None
