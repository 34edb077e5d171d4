"""The model file's format: one JSON record describing the network, plus its arrays by name.

model.npz
    "minicnn.json"      the record: format name and version, the architecture (each layer's
                        type name and `config()`), input shape, output ("softmax" or
                        "sigmoid"), class names, channels, image size, normalisation mean/std;
                        optional: "frozen" (the names of frozen parameters, "layers.0.W",
                        ...) and "threshold" (a two-class model's decision threshold), which
                        readers that predate them ignore
    "layers.3.W", ...   one float array per Parameter: layer index, attribute name
    "layers.4.running_mean", ...   and per buffer (a layer's BUFFERS: BatchNorm's running
                        statistics, plain arrays that are no Parameters)

A layer that holds layers (its class lists the attributes that hold them in CHILDREN, each
a list of layers or None) is recorded with them, nested under "children":

    {"type": "Residual", "config": {...}, "children": {"branch": [{...}, ...], "shortcut": null}}

and its layers' arrays are named by their path: "layers.3.branch.0.W". It is rebuilt as
`cls(**config, **children)`. Layer types are those of minicnn.layers.LAYER_TYPES.
"""

import json

import numpy as np

from ..layers import LAYER_TYPES, nested
from ..parameter import Parameter

MODEL_FORMAT = "minicnn-model"
CHECKPOINT_FORMAT = "minicnn-checkpoint"
VERSION = 1
RECORD_KEY = "minicnn.json"
PREFIX = "layers"  # every layer array's name starts "layers.{i}."


class ModelFileError(ValueError):
    """A model or checkpoint file cannot be used. The message names the file."""


def child_lists(layer):
    """{attribute: list of layers or None} of a layer that holds layers ({} for others)."""
    return {name: getattr(layer, name) for name in getattr(type(layer), "CHILDREN", ())}


def walk(layers, prefix=PREFIX):
    """(path, layer) for every layer, each holder before the layers it holds (layers.nested).

    path: "layers.3" for model.layers[3]; "layers.3.branch.0" for its branch[0].
    """
    return nested.walk(layers, prefix + ".")


def layer_parameters(path, layer):
    """("{path}.{attribute}", Parameter) of the layer, without those of the layers it holds."""
    inner = {
        id(p) for held in child_lists(layer).values() for x in held or [] for p in x.parameters()
    }
    by_id = {id(v): k for k, v in vars(layer).items() if isinstance(v, Parameter)}
    own = [p for p in layer.parameters() if id(p) not in inner]
    return [(f"{path}.{by_id.get(id(p), j)}", p) for j, p in enumerate(own)]


def named_parameters(model):
    """("layers.{i}.{attribute}", Parameter) for every parameter of the model, in order."""
    for path, layer in walk(model.layers):
        yield from layer_parameters(path, layer)


def model_arrays(model):
    """{name: array} of everything save() stores beside the record: per layer, each
    Parameter's data, then each buffer (a layer's BUFFERS: BatchNorm's running statistics)."""
    arrays = {}
    for path, layer in walk(model.layers):
        arrays |= {name: p.data for name, p in layer_parameters(path, layer)}
        arrays |= {f"{path}.{name}": getattr(layer, name) for name in getattr(layer, "BUFFERS", ())}
    return arrays


def layer_record(layer):
    """{"type": name, "config": {...}} of a layer, with "children" for a layer holding some."""
    name = type(layer).__name__
    if LAYER_TYPES.get(name) is not type(layer):
        raise TypeError(f"cannot save layer {layer!r}: only {', '.join(LAYER_TYPES)} are known")
    record = {"type": name, "config": layer.config()}
    inner = child_lists(layer)
    if inner:
        record["children"] = {
            k: None if held is None else [layer_record(x) for x in held]
            for k, held in inner.items()
        }
    return record


def architecture(model):
    """The record's "layers": one layer_record per layer of the model."""
    return [layer_record(layer) for layer in model.layers]


def _listify(v):
    return None if v is None else [float(x) for x in np.asarray(v).reshape(-1)]


def model_record(model, class_names=None, mean=None, std=None, metadata=None):
    """The JSON-ready description of a model (everything but the weights)."""
    if model.input_shape is None:
        raise ValueError("save needs a model with input_shape (C, H, W), e.g. models.paper()")
    C, H, W = model.input_shape
    class_names = class_names if class_names is not None else model.class_names
    mean = mean if mean is not None else model.mean
    std = std if std is not None else model.std
    record = {
        "format": MODEL_FORMAT,
        "version": VERSION,
        "layers": architecture(model),
        "input_shape": [int(C), int(H), int(W)],
        "channels": int(C),
        "image_size": int(H),
        "output": model.output,
        "class_names": None if class_names is None else [str(c) for c in class_names],
        "mean": _listify(mean),
        "std": _listify(std),
        "metadata": metadata or {},
    }
    frozen = [name for name, p in named_parameters(model) if not p.trainable]
    if frozen:  # optional fields: written only when there is something to say
        record["frozen"] = frozen
    if getattr(model, "threshold", None) is not None:
        record["threshold"] = float(model.threshold)
    return record


def record_array(record):
    """The record as a NumPy unicode scalar: stored in the .npz, it loads without pickle."""
    return np.array(json.dumps(record))
