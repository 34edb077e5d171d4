"""Layers that hold layers: the one place that knows how to walk into them.

A layer that holds layers (Residual) names the attributes that hold them in its class
attribute CHILDREN, e.g. ("branch", "shortcut"); each such attribute is a list of layers or
None. Everything that goes through a model (parameters, dtype, freezing, summary, saving)
walks it with the functions below, never with a recursion of its own.

    for path, layer in walk(model.layers):   # "0", "1", "3", "3.branch.0", "3.branch.1", ...
        ...
"""

import numpy as np

from .base import output_shapes
from .cost import cost


def children(layer):
    """(name, list of layers) for each list a layer holds; [] for a plain layer."""
    lists = ((name, getattr(layer, name)) for name in getattr(layer, "CHILDREN", ()))
    return [(name, layers) for name, layers in lists if layers is not None]


def walk(layers, prefix=""):
    """Yield (path, layer) for every layer, depth-first, a block before the layers inside it.

    Paths are top-level indices, with the attribute and the index inside a block appended:
    "3", "3.branch.0", "3.shortcut.1", "3.branch.2.branch.0" (a block inside a block).
    """
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        yield path, layer
        for name, inner in children(layer):
            yield from walk(inner, f"{path}.{name}.")


def leaves(layers):
    """The layers that hold no layers, in walk order: the ones with math of their own."""
    return [layer for _, layer in walk(layers) if not children(layer)]


def parameters(layers):
    """Every Parameter of layers and of the layers inside them, in walk order, once each."""
    return [p for layer in leaves(layers) for p in layer.parameters()]


def astype(layers, dtype):
    """Convert the parameters (and buffers, e.g. BatchNorm's) of every layer inside to dtype."""
    for layer in leaves(layers):
        layer.astype(dtype)


def nested_cost(layers, input_shape, itemsize=4, prefix="", depth=0):
    """cost() rows (see layers/cost.py), with the rows of the layers inside each block.

    Each row also has "path" (as walk's) and "depth" (0: a layer of `layers`). A block's row
    follows walk's order: the block, then its layers one level deeper. The block's
    multiply-adds and parameters are those of everything inside; its activations are its
    output plus what the layers inside it write. Each list inside a block takes the block's
    input. Sum the depth-0 rows for the totals.
    """
    rows = []
    inputs = [tuple(input_shape)] + output_shapes(layers, input_shape)[:-1]
    for row, layer, shape_in in zip(cost(layers, input_shape, itemsize), layers, inputs):
        path = f"{prefix}{row['index']}"
        row = dict(row, path=path, depth=depth)
        inner = []
        for name, lays in children(layer):
            inner += nested_cost(lays, shape_in, itemsize, f"{path}.{name}.", depth + 1)
        row["activations"] += sum(r["activations"] for r in inner if r["depth"] == depth + 1)
        row["activation_bytes"] = row["activations"] * itemsize
        rows += [row] + inner
    return rows


def total(rows, key):
    """The sum of a column over the depth-0 rows of nested_cost."""
    return int(np.sum([r[key] for r in rows if r["depth"] == 0], dtype=np.int64))
