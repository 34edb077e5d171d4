"""save and load: a Sequential to a model file (.npz, see record.py) and back, no pickle."""

import numpy as np

from ..sequential import Sequential
from .archive import Archive
from .atomic import atomic_savez
from .record import (
    LAYER_TYPES,
    MODEL_FORMAT,
    PREFIX,
    RECORD_KEY,
    ModelFileError,
    layer_parameters,
    model_arrays,
    model_record,
    named_parameters,
    record_array,
    walk,
)
from .validate import check_arrays, check_model_record, layer_name


def save(model, path, class_names=None, mean=None, std=None, metadata=None):
    """Write a model to `path` (.npz): weights + architecture + preprocessing, no pickle.

    class_names, mean, std default to the model's attributes of the same names; metadata is
    any JSON-serialisable dict kept in the record (e.g. the training settings).
    """
    record = model_record(model, class_names, mean, std, metadata)
    arrays = model_arrays(model)
    arrays[RECORD_KEY] = record_array(record)
    atomic_savez(path, arrays)


def build_layer(path, spec, where):
    """A layer from its checked record: the layers it holds first, then cls(**config, ...)."""
    children = {
        name: None if inner is None else [
            build_layer(path, s, f"{where}.{name}.{j}") for j, s in enumerate(inner)
        ]
        for name, inner in spec.get("children", {}).items()
    }  # fmt: skip
    try:
        return LAYER_TYPES[spec["type"]](**spec.get("config", {}), **children)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: cannot rebuild {layer_name(where, spec)}: {e}") from None


def build(path, record):
    """A Sequential from a checked record's architecture (weights still initial)."""
    layers = [build_layer(path, spec, f"{PREFIX}.{i}") for i, spec in enumerate(record["layers"])]
    try:
        model = Sequential(layers, input_shape=record["input_shape"], output=record["output"])
    except ValueError as e:
        raise ModelFileError(f"{path}: the stored architecture is inconsistent: {e}") from None
    model.class_names = record.get("class_names")
    model.mean = None if record.get("mean") is None else np.asarray(record["mean"], np.float32)
    model.std = None if record.get("std") is None else np.asarray(record["std"], np.float32)
    return model


def _stored(path, arrays, name, layer, shape, what="weights"):
    """arrays[name] as a contiguous float array of `shape`, or a ModelFileError naming layer."""
    if name not in arrays:
        raise ModelFileError(f"{path}: missing {what} {name!r} for {layer!r}")
    a = arrays[name]
    if a.shape != shape:
        raise ModelFileError(
            f"{path}: {what} {name!r} have shape {a.shape}, {layer!r} needs {shape}"
        )
    if not np.issubdtype(a.dtype, np.floating):
        raise ModelFileError(f"{path}: {what} {name!r} are {a.dtype}, not floats")
    return np.ascontiguousarray(a)


def set_weights(path, model, arrays):
    """Every parameter and buffer of the model from `arrays`, by the names save() gives them."""
    for where, layer in walk(model.layers):
        for name, p in layer_parameters(where, layer):
            p.data = _stored(path, arrays, name, layer, p.data.shape)
            p.grad = np.zeros_like(p.data)
        for name in getattr(layer, "BUFFERS", ()):  # BatchNorm's running statistics
            key, shape = f"{where}.{name}", getattr(layer, name).shape
            setattr(layer, name, _stored(path, arrays, key, layer, shape, "running statistics"))


def set_frozen(path, model, names):
    """Freeze the parameters a record names; a name that is no parameter is an error."""
    params = dict(named_parameters(model))
    unknown = [name for name in names if name not in params]
    if unknown:
        raise ModelFileError(f"{path}: the record freezes {unknown[:5]}, no parameters it has")
    for name in names:
        params[name].trainable = False


def load(path):
    """Read a model written by `save`: returns a Sequential ready for `predict_proba`.

    Raises ModelFileError (naming the file, and the layer where one is at fault) for a
    truncated file, another format, pickled objects, a record of the wrong types, or weights
    missing or of another shape than the record's layers need; all are found before any
    layer is built. The parameters the record lists as frozen come back frozen, and
    model.threshold is the record's threshold (None without one).
    """
    with Archive(path) as archive:
        record = archive.record(MODEL_FORMAT)
        check_model_record(archive.path, record)
        keys = check_arrays(archive.path, record, archive.headers)
        others = sorted(set(archive.headers) - set(keys) - {RECORD_KEY})
        if others:
            raise ModelFileError(f"{archive.path}: holds arrays no layer uses: {others[:5]}")
        arrays = archive.arrays(keys)
    model = build(archive.path, record)
    set_weights(archive.path, model, arrays)
    set_frozen(archive.path, model, record.get("frozen") or [])
    model.threshold = record.get("threshold")
    model.metadata = record.get("metadata") or {}
    return model
