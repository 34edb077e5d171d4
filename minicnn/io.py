"""Model files and training checkpoints as .npz: arrays plus one JSON record, never pickle.

model.npz
    "minicnn.json"      the record: format name and version, the architecture (each layer's
                        type name and `config()`), input shape, output ("softmax" or
                        "sigmoid"), class names, channels, image size, normalisation mean/std
    "layers.3.W", ...   one float array per Parameter: layer index, attribute name
    "layers.4.running_mean", ...   and per buffer (a layer's BUFFERS: BatchNorm's running
                        statistics, plain arrays that are no Parameters)

checkpoint.npz          the same, plus what it takes to continue training exactly:
    "optim.m.0", ...    the optimizer's state arrays (Adam: m and v; SGD: velocity)
    the record also holds the epoch, the history, the optimizer's scalars (Adam's step count
    t), every Dropout layer's generator state and whatever the trainer adds (its seed).

Files are read with `np.load(..., allow_pickle=False)`, so a model file cannot run code, and
layers are rebuilt from the explicit table LAYER_TYPES, not from names looked up at large.
Writes go to a temporary file in the same folder, then `os.replace`: a crash never leaves a
half-written file under the real name.
"""

import csv
import json
import os
import zipfile

import numpy as np

from .layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
)
from .parameter import Parameter
from .sequential import Sequential

MODEL_FORMAT = "minicnn-model"
CHECKPOINT_FORMAT = "minicnn-checkpoint"
VERSION = 1
RECORD_KEY = "minicnn.json"

LAYER_TYPES = {
    "AvgPool2D": AvgPool2D,
    "BatchNorm1D": BatchNorm1D,
    "BatchNorm2D": BatchNorm2D,
    "Conv2D": Conv2D,
    "Dense": Dense,
    "Dropout": Dropout,
    "Flatten": Flatten,
    "GlobalAvgPool2D": GlobalAvgPool2D,
    "MaxPool2D": MaxPool2D,
    "ReLU": ReLU,
    "Sigmoid": Sigmoid,
    "Softmax": Softmax,
}


class ModelFileError(ValueError):
    """A model or checkpoint file cannot be used. The message names the file."""


# ----------------------------------------------------------------------------- writing


def _param_names(i, layer):
    """Names of a layer's parameters in parameters() order: "layers.{i}.{attribute}"."""
    by_id = {id(v): k for k, v in vars(layer).items() if isinstance(v, Parameter)}
    return [f"layers.{i}.{by_id.get(id(p), j)}" for j, p in enumerate(layer.parameters())]


def _model_arrays(model):
    arrays = {}
    for i, layer in enumerate(model.layers):
        for name, p in zip(_param_names(i, layer), layer.parameters()):
            arrays[name] = p.data
        for name in getattr(layer, "BUFFERS", ()):
            arrays[f"layers.{i}.{name}"] = getattr(layer, name)
    return arrays


def _architecture(model):
    layers = []
    for layer in model.layers:
        name = type(layer).__name__
        if LAYER_TYPES.get(name) is not type(layer):
            raise TypeError(f"cannot save layer {layer!r}: only {', '.join(LAYER_TYPES)} are known")
        layers.append({"type": name, "config": layer.config()})
    return layers


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
    return {
        "format": MODEL_FORMAT,
        "version": VERSION,
        "layers": _architecture(model),
        "input_shape": [int(C), int(H), int(W)],
        "channels": int(C),
        "image_size": int(H),
        "output": model.output,
        "class_names": None if class_names is None else [str(c) for c in class_names],
        "mean": _listify(mean),
        "std": _listify(std),
        "metadata": metadata or {},
    }


def _record_array(record):
    return np.array(json.dumps(record))  # a numpy unicode scalar, loads without pickle


def atomic_savez(path, arrays):
    """np.savez to `path` through a temporary file in the same folder and os.replace."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save(model, path, class_names=None, mean=None, std=None, metadata=None):
    """Write a model to `path` (.npz): weights + architecture + preprocessing, no pickle.

    class_names, mean, std default to the model's attributes of the same names; metadata is
    any JSON-serialisable dict kept in the record (e.g. the training settings).
    """
    record = model_record(model, class_names, mean, std, metadata)
    arrays = _model_arrays(model)
    arrays[RECORD_KEY] = _record_array(record)
    atomic_savez(path, arrays)


# ----------------------------------------------------------------------------- reading


def _read(path, expect_format):
    """All arrays of an .npz and its parsed record, with errors that name the file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        if f.read(2) != b"PK":  # every .npz is a zip archive
            raise ModelFileError(f"{path} is not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickle" in str(e).lower():
            raise ModelFileError(
                f"{path} holds pickled Python objects; minicnn refuses to load them "
                "(a model file must never be able to run code)"
            ) from None
        raise ModelFileError(f"{path} is not a minicnn {expect_format} file: {e}") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise ModelFileError(
            f"{path} is not a readable .npz file (truncated or another format): {e}"
        ) from None
    if RECORD_KEY not in arrays:
        raise ModelFileError(
            f"{path} is an .npz file but not a minicnn {expect_format} file "
            f"(no {RECORD_KEY!r} record)"
        )
    try:
        record = json.loads(str(arrays.pop(RECORD_KEY)))
    except (json.JSONDecodeError, TypeError) as e:
        raise ModelFileError(f"{path}: its {RECORD_KEY!r} record is not valid JSON: {e}") from None
    if not isinstance(record, dict) or record.get("format") != expect_format:
        found = record.get("format") if isinstance(record, dict) else None
        raise ModelFileError(f"{path} is a {found!r} file, expected {expect_format!r}")
    if record.get("version") != VERSION:
        raise ModelFileError(
            f"{path} has {expect_format} version {record.get('version')!r}; "
            f"this minicnn reads version {VERSION}"
        )
    return arrays, record


def _require(path, record, keys):
    missing = [k for k in keys if k not in record]
    if missing:
        raise ModelFileError(f"{path}: the record lacks {', '.join(missing)}")


def _build(path, record):
    """A Sequential from the record's architecture (weights still initial)."""
    _require(path, record, ("layers", "input_shape", "output"))
    layers = []
    for i, spec in enumerate(record["layers"]):
        cls = LAYER_TYPES.get(spec.get("type"))
        if cls is None:
            raise ModelFileError(f"{path}: layer #{i} has unknown type {spec.get('type')!r}")
        try:
            layers.append(cls(**spec.get("config", {})))
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: cannot rebuild layer #{i} {spec}: {e}") from None
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


def _set_weights(path, model, arrays):
    for i, layer in enumerate(model.layers):
        for name, p in zip(_param_names(i, layer), layer.parameters()):
            p.data = _stored(path, arrays, name, layer, p.data.shape)
            p.grad = np.zeros_like(p.data)
        for name in getattr(layer, "BUFFERS", ()):  # BatchNorm's running statistics
            key, shape = f"layers.{i}.{name}", getattr(layer, name).shape
            setattr(layer, name, _stored(path, arrays, key, layer, shape, "running statistics"))


def load(path):
    """Read a model written by `save`: returns a Sequential ready for `predict_proba`.

    Raises ModelFileError (naming the file) for a truncated file, another format, pickled
    objects, or missing / mis-shaped weights.
    """
    arrays, record = _read(path, MODEL_FORMAT)
    model = _build(path, record)
    _set_weights(path, model, arrays)
    model.metadata = record.get("metadata", {})
    return model


# ----------------------------------------------------------------------------- checkpoints


def dropout_states(model):
    """The bit-generator state (a JSON-ready dict) of every Dropout layer, by layer index."""
    return {
        str(i): layer.rng.bit_generator.state
        for i, layer in enumerate(model.layers)
        if isinstance(layer, Dropout)
    }


def set_dropout_states(model, states):
    for i, state in states.items():
        model.layers[int(i)].rng.bit_generator.state = state


def save_checkpoint(path, model, optimizer, epoch, history, extra=None):
    """Write everything needed to continue training after `epoch` (1-based) to `path`.

    extra: JSON-serialisable dict kept in the record (the trainer stores its seed there).
    """
    record = model_record(model)
    record["format"] = CHECKPOINT_FORMAT
    record["epoch"] = int(epoch)
    record["history"] = list(history)
    record["dropout_states"] = dropout_states(model)
    record["optimizer"] = {"type": type(optimizer).__name__, "scalars": {}, "lists": {}}
    arrays = _model_arrays(model)
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list | tuple):
            record["optimizer"]["lists"][key] = len(value)
            for j, a in enumerate(value):
                arrays[f"optim.{key}.{j}"] = a
        else:
            record["optimizer"]["scalars"][key] = value.item() if hasattr(value, "item") else value
    record["extra"] = extra or {}
    arrays[RECORD_KEY] = _record_array(record)
    atomic_savez(path, arrays)


def load_checkpoint(path, model, optimizer):
    """Restore weights, optimizer state and Dropout generators from `path` into the objects.

    The model must have the checkpoint's architecture and the optimizer its type.
    Returns a dict: epoch (last finished, 1-based), history (list of dicts), extra.
    """
    arrays, record = _read(path, CHECKPOINT_FORMAT)
    _require(path, record, ("layers", "epoch", "history", "optimizer", "dropout_states"))
    same = record["layers"] == _architecture(model)
    same &= record["input_shape"] == list(model.input_shape)
    same &= record.get("output", model.output) == model.output  # softmax or sigmoid head
    if not same:
        raise ModelFileError(
            f"{path} was written for another architecture or input shape than this model "
            "(same --preset, --image-size, classes and --output needed to resume)"
        )
    opt = record["optimizer"]
    if opt.get("type") != type(optimizer).__name__:
        raise ModelFileError(
            f"{path} holds {opt.get('type')} state, the optimizer is {type(optimizer).__name__}"
        )
    _set_weights(path, model, arrays)
    state = dict(opt["scalars"])
    for key, n in opt["lists"].items():
        try:
            state[key] = [arrays[f"optim.{key}.{j}"] for j in range(n)]
        except KeyError as e:
            raise ModelFileError(f"{path}: missing optimizer array {e}") from None
    optimizer.load_state_dict(state)
    set_dropout_states(model, record["dropout_states"])
    return {"epoch": record["epoch"], "history": record["history"], "extra": record["extra"]}


# ----------------------------------------------------------------------------- tables

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "lr")


def write_history_csv(path, history):
    """history.csv: one row per epoch, columns HISTORY_COLUMNS (empty cell for no value)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_COLUMNS)
        for row in history:
            w.writerow(["" if row.get(k) is None else row[k] for k in HISTORY_COLUMNS])


def write_confusion_csv(path, cm, class_names):
    """confusion.csv: header "true \\ predicted", class names; one row per true class."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted"] + [str(c) for c in class_names])
        for name, row in zip(class_names, np.asarray(cm)):
            w.writerow([str(name)] + [int(v) for v in row])
