"""Residual on the fast engine: its branch and shortcut run as fast steps.

Equals minicnn.layers.Residual,

    out = relu(branch(x) + shortcut(x))        (or without relu: activation None)

with the branch and the shortcut planned like a model's layers (fast.plan): a branch
Conv2D(bias=False) -> BatchNorm2D -> ReLU is a ConvBNBlock, a Conv2D alone a FastConv,
and so on. The sum and the ReLU are the layer's own NumPy lines. tests/test_residual.py
holds outputs and every gradient to the reference layers (float64, 1e-12, at 1 and 2
threads, with chunks of one image).
"""

import numpy as np


def clear_fused(layers, steps):
    """Layers that a fused step computes keep no values of an earlier call of their own."""
    for i, step in steps:
        if step is not layers[i]:
            for layer in step.layers:
                layer.cache = None


class FastResidual:
    """A Residual whose branch and shortcut are lists of (index, fast step) pairs.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), the block's output shape.
    """

    def __init__(self, block, branch, shortcut=None):
        self.block, self.layers = block, [block]
        self.branch, self.shortcut = branch, shortcut
        clear_fused(block.branch, branch)
        if shortcut is not None:
            clear_fused(block.shortcut, shortcut)

    def parameters(self):
        return self.block.parameters()

    def forward(self, x, training=False):
        self.block.output_shape(x.shape[1:])  # the layer's clear error on a mismatch
        z = x
        for _, step in self.branch:
            z = step.forward(z, training)
        skip = x
        for _, step in self.shortcut or []:
            skip = step.forward(skip, training)
        z = z + skip  # (N, F, H', W')
        relu = self.block.activation == "relu"
        self._positive = z > 0 if relu else None
        return np.maximum(z, 0) if relu else z

    def backward(self, dout, input_grad=True):
        g = dout if self._positive is None else dout * self._positive
        grads = []
        for steps in (self.branch, self.shortcut):
            d = g
            for k in reversed(range(len(steps or []))):
                d = steps[k][1].backward(d, input_grad=input_grad or k > 0)
            grads.append(d)
        return grads[0] + grads[1] if input_grad else None
