"""What a network costs per image: multiply-adds and activation memory, layer by layer.

A multiply-add (MAC) is one product added into a sum: a convolution's output value costs
C*k*k of them, a dense unit in_features. BatchNorm counts one per value (x * scale + shift,
once its statistics are fixed; in evaluation the fast engine folds it into the convolution,
at no cost). Pools, activations, dropout and flatten only compare, add or copy: 0. The
convention is the one of the paper's notes (paper: 12.0 M, paper13: 23.0 M at 64x64) and of
most papers' "FLOPs". Training costs about three times the forward pass.
"""

import numpy as np

from .base import Layer, output_shapes


def _conv_macs(layer, input_shape):
    F, H_out, W_out = layer.output_shape(input_shape)
    return F * H_out * W_out * layer.in_channels * layer.kernel_size**2


def _dense_macs(layer, input_shape):
    return layer.in_features * layer.out_features


# Layers without a macs(input_shape) method of their own, by type name.
MACS_BY_TYPE = {"Conv2D": _conv_macs, "Dense": _dense_macs}


def macs(layer, input_shape):
    """Multiply-adds of one layer's forward pass for one image of shape input_shape."""
    own = getattr(type(layer), "macs", None)
    if own is not None and own is not getattr(Layer, "macs", None):
        return int(layer.macs(input_shape))
    rule = MACS_BY_TYPE.get(type(layer).__name__)
    return 0 if rule is None else int(rule(layer, input_shape))


def cost(layers, input_shape, itemsize=4):
    """One row per layer: what it holds and what it costs for one image of input_shape.

    Returns a list of dicts, in layer order:
    - index, layer (its repr), output_shape (tuple)
    - params: number of parameter values
    - macs: multiply-adds of its forward pass per image
    - activations: values of its output per image; activation_bytes = activations * itemsize
      (float32: 4). Summed over the layers, that is what one image's forward pass writes,
      about what training keeps for backward.
    Totals are the sums of the columns, e.g. sum(r["macs"] for r in cost(...)).
    """
    shapes = output_shapes(layers, input_shape)
    inputs = [tuple(input_shape)] + shapes[:-1]
    rows = []
    for i, (layer, shape_in, shape_out) in enumerate(zip(layers, inputs, shapes)):
        n = int(np.prod(shape_out))
        rows.append(
            {
                "index": i,
                "layer": repr(layer),
                "output_shape": tuple(shape_out),
                "params": sum(p.size for p in layer.parameters()),
                "macs": macs(layer, shape_in),
                "activations": n,
                "activation_bytes": n * itemsize,
            }
        )
    return rows
