"""Constant folding for the importer: what exporters compute around the layers from constants.

PyTorch writes x.flatten(1) as Shape(x) -> Gather(0) -> Unsqueeze -> Concat([N], [-1]) ->
Reshape(x, [N, -1]). Each op here computes its output from constant inputs (attributes,
*arrays); the batch size, unknown until run time, stands in a shape as BATCH, so that
pattern folds to the Reshape target [BATCH, -1], which the importer reads as a flatten.
"""

import numpy as np

from .common import require


class _Batch:
    """The batch size in a folded shape: Shape(x) of an (N, C, H, W) tensor is [N, C, H, W]."""

    def __repr__(self):
        return "N"


BATCH = _Batch()


def _axes(attrs, axes):
    return [int(a) for a in (attrs["axes"] if "axes" in attrs else np.asarray(axes).reshape(-1))]


def _unsqueeze(attrs, x, axes=None):
    out = np.asarray(x)
    for a in sorted(a % (out.ndim + len(_axes(attrs, axes)) + 1) for a in _axes(attrs, axes)):
        out = np.expand_dims(out, a)
    return out


def _slice(attrs, x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * np.ndim(x)
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return np.asarray(x)[tuple(index)]


def _shape(attrs, x):
    shape = np.asarray(x, dtype=object) if x.dtype == object else np.array(x.shape, np.int64)
    return shape[attrs.get("start", 0) : attrs.get("end", None)]


def _constant(attrs):
    onnx = require()
    if "value" in attrs:
        return onnx.numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):  # fmt: skip
        if key in attrs:
            return np.asarray(attrs[key], dtype)
    raise ValueError(f"a Constant with {sorted(attrs)} is not read")


def _cast(attrs, x):
    if x.dtype == object:  # a shape holding the batch size stays a shape
        return x
    onnx = require()
    return x.astype(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))


FOLDS = {
    "Constant": _constant,
    "Shape": _shape,
    "Gather": lambda a, x, i: np.take(x, np.asarray(i, np.int64), axis=a.get("axis", 0)),
    "Unsqueeze": _unsqueeze,
    "Squeeze": lambda a, x, axes=None: np.squeeze(x, axis=tuple(_axes(a, axes))),
    "Concat": lambda a, *xs: np.concatenate([np.atleast_1d(x) for x in xs], axis=a["axis"]),
    "Slice": _slice,
    "Cast": _cast,
    "Identity": lambda a, x: x,
    "Reshape": lambda a, x, shape: np.reshape(x, [int(s) for s in shape]),
    "Transpose": lambda a, x: np.transpose(x, a.get("perm")),
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x // y if np.asarray(x).dtype.kind in "iu" else x / y,
}
