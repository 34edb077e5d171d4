"""Model files and training checkpoints as .npz: arrays plus one JSON record, never pickle.

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

checkpoint.npz          the same, plus what it takes to continue training exactly:
    "optim.m.0", ...    the optimizer's state arrays (Adam: m and v; SGD: velocity)
    the record also holds the epoch, the history, the optimizer's scalars (Adam's step count
    t), every Dropout layer's generator state and whatever the trainer adds (its seed).

Arrays are read with `allow_pickle=False`, so a model file cannot run code, and layers are
rebuilt from the explicit table LAYER_TYPES, not from names looked up at large. Before any
layer is built, each array's header, the record's JSON types and every layer's configuration
are checked against each other (ARRAYS_OF): a file that lies about its layers is a
ModelFileError naming the layer, never a huge allocation. Writes go to a temporary file in
the same folder, then `os.replace` (atomic_write): a crash or a full disk never leaves a
half-written file under the real name, nor a temporary file beside it.
"""

import csv
import json
import os
import zipfile

import numpy as np

from .data.sources import printable
from .heads import OUTPUTS
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
    record = {
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
    frozen = [name for name, p in _named_parameters(model) if not p.trainable]
    if frozen:  # optional fields: written only when there is something to say
        record["frozen"] = frozen
    if getattr(model, "threshold", None) is not None:
        record["threshold"] = float(model.threshold)
    return record


def _named_parameters(model):
    """("layers.{i}.{attribute}", Parameter) for every parameter of the model, in order."""
    for i, layer in enumerate(model.layers):
        yield from zip(_param_names(i, layer), layer.parameters())


def _set_frozen(path, model, names):
    """Freeze the parameters a record names; a name that is no parameter is an error."""
    params = dict(_named_parameters(model))
    unknown = [name for name in names if name not in params]
    if unknown:
        raise ModelFileError(f"{path}: the record freezes {unknown[:5]}, no parameters it has")
    for name in names:
        params[name].trainable = False


def _record_array(record):
    return np.array(json.dumps(record))  # a numpy unicode scalar, loads without pickle


class WriteError(OSError):
    """A file could not be written; the message names it and says that the old one is kept."""

    def __str__(self):
        return self.strerror


def atomic_write(path, write):
    """Write a file through a temporary name in its folder: write(tmp_path), then os.replace.

    On any error the temporary file is removed and a file already at `path` stays as it was;
    an OSError (disk full, permissions, ...) comes back as WriteError naming `path`.
    The temporary name keeps the extension, so writers that go by it (Pillow) still can.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    stem, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(folder, f".{stem}.{os.getpid()}.tmp{ext}")
    try:
        os.makedirs(folder, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        kept = "the previous file is unchanged" if os.path.exists(path) else "nothing written"
        why = e.strerror or str(e)
        if e.filename is not None and os.fspath(e.filename) not in (path, tmp):
            why = f"{printable(e.filename)}: {why}"  # a folder on the way, say
        message = f"cannot write {printable(path)}: {why}; {kept}"
        raise WriteError(e.errno, message) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_savez(path, arrays):
    """np.savez to `path` through atomic_write, synced to disk before the rename."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


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
#
# A file is checked before anything is built from it: first each array's header (its shape
# and dtype, read from the zip without the data), then the record's JSON types, then every
# layer's configuration against the arrays the file holds. Only then are the arrays read and
# the layers built, so a record that claims a layer larger than its arrays costs nothing.

MAX_RECORD_CHARS = 1 << 24  # 16 M characters; a 200-class model's record is about 20 k
MAX_NESTING = 32  # JSON depth; the record itself needs 5 (its history rows: 3)
MAX_SIZE = 1 << 24  # any int in a layer's configuration or the input shape
MAX_LAYERS = 10_000
_READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError)


def _conv_arrays(config):
    F, C, k = config["out_channels"], config["in_channels"], config["kernel_size"]
    return {"W": (F, C, k, k)} | ({} if config.get("bias", True) is False else {"b": (F,)})


def _dense_arrays(config):
    return {"W": (config["in_features"], config["out_features"]), "b": (config["out_features"],)}


def _norm_arrays(config):
    n = (config["num_features"],)
    return {"gamma": n, "beta": n, "running_mean": n, "running_var": n}


# The arrays each layer type stores, by attribute, with their shapes from its config() alone.
# A type not listed stores none; a test holds this table to what save() writes for each type.
ARRAYS_OF = {
    "Conv2D": _conv_arrays,
    "Dense": _dense_arrays,
    "BatchNorm1D": _norm_arrays,
    "BatchNorm2D": _norm_arrays,
}


class _Archive:
    """An .npz opened for checking: `headers` {key: (shape, dtype)} of every array, read
    without its data; `arrays(keys)` then reads the data of those checked."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"{self.path}: no such file")
        with open(self.path, "rb") as f:
            if f.read(2) != b"PK":  # every .npz is a zip archive
                raise ModelFileError(f"{self.path} is not a readable .npz file (not a zip archive)")
        try:
            self.zip = zipfile.ZipFile(self.path)
        except _READ_ERRORS as e:
            raise self._unreadable(e) from None
        try:
            self.headers = dict(self._header(info) for info in self.zip.infolist())
        except BaseException:
            self.zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    def _unreadable(self, e):
        return ModelFileError(
            f"{self.path} is not a readable .npz file (truncated or another format): {e}"
        )

    def _header(self, info):
        key = info.filename.removesuffix(".npy")
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"array {key!r} has .npy version {version}")
                start = f.tell()
        except _READ_ERRORS as e:
            raise self._unreadable(e) from None
        if dtype.hasobject:
            raise ModelFileError(
                f"{self.path} holds pickled Python objects; minicnn refuses to load them "
                "(a model file must never be able to run code)"
            )
        size = start + int(np.prod(shape, dtype=object)) * dtype.itemsize
        if size != info.file_size:  # the header must not promise more than the file holds
            raise ModelFileError(
                f"{self.path}: array {key!r} declares {shape} {dtype} ({size:,} bytes) but "
                f"holds {info.file_size:,} bytes"
            )
        return key, (tuple(shape), dtype)

    def arrays(self, keys):
        """The data of `keys` (checked before), as {key: ndarray}."""
        try:
            return {
                k: np.lib.format.read_array(self.zip.open(k + ".npy"), allow_pickle=False)
                for k in keys
            }
        except _READ_ERRORS as e:
            raise self._unreadable(e) from None

    def record(self, expect_format):
        """The parsed record, refused if it is not JSON, too large, too deep or another format."""
        path = self.path
        if RECORD_KEY not in self.headers:
            raise ModelFileError(
                f"{path} is an .npz file but not a minicnn {expect_format} file "
                f"(no {RECORD_KEY!r} record)"
            )
        shape, dtype = self.headers[RECORD_KEY]
        if dtype.kind != "U" or shape != ():
            raise ModelFileError(f"{path}: its {RECORD_KEY!r} record is {dtype} {shape}, not text")
        if dtype.itemsize // 4 > MAX_RECORD_CHARS:
            raise ModelFileError(
                f"{path}: its record has {dtype.itemsize // 4:,} characters, more than the "
                f"{MAX_RECORD_CHARS:,} a minicnn record may have"
            )
        text = str(self.arrays([RECORD_KEY])[RECORD_KEY])
        try:
            record = json.loads(text)
        except RecursionError:
            record = None
        except json.JSONDecodeError as e:
            raise ModelFileError(
                f"{path}: its {RECORD_KEY!r} record is not valid JSON: {e}"
            ) from None
        if record is None or _nesting(record) > MAX_NESTING:
            raise ModelFileError(f"{path}: its record nests deeper than {MAX_NESTING} levels")
        if not isinstance(record, dict) or record.get("format") != expect_format:
            found = record.get("format") if isinstance(record, dict) else None
            raise ModelFileError(f"{path} is a {found!r} file, expected {expect_format!r}")
        if record.get("version") != VERSION:
            raise ModelFileError(
                f"{path} has {expect_format} version {record.get('version')!r}; "
                f"this minicnn reads version {VERSION}"
            )
        return record


def _nesting(value):
    """Depth of a parsed JSON value (a scalar is 1), counted without recursion."""
    depth, level = 0, [value]
    while level and depth <= MAX_NESTING:
        depth += 1
        level = [
            v
            for x in level
            if isinstance(x, dict | list)
            for v in (x.values() if isinstance(x, dict) else x)
        ]
    return depth


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str(v):
    return isinstance(v, str)


def _is_dict(v):
    return isinstance(v, dict)


def _require(path, record, keys):
    missing = [k for k in keys if k not in record]
    if missing:
        raise ModelFileError(f"{path}: the record lacks {', '.join(missing)}")


def _kind(path, record, key, ok, wanted):
    if not ok(record.get(key)):
        got = type(record.get(key)).__name__
        raise ModelFileError(f"{path}: the record's {key!r} should be {wanted}, is a {got}")


def _layer_name(i, spec):
    args = ", ".join(f"{k}={v!r}" for k, v in spec.get("config", {}).items())
    text = f"layer #{i} {spec['type']}({args})"
    return text if len(text) <= 160 else text[:157] + "..."


def _list_of(ok, length=None):
    """A check for a JSON list whose items all pass `ok` (of `length` items, if given)."""
    return lambda v: isinstance(v, list) and len(v) == (length or len(v)) and all(map(ok, v))


def _or_none(ok):
    return lambda v: v is None or ok(v)


def _check_model_record(path, record):
    """The JSON types and ranges of a model record, each layer's config among them."""
    _require(path, record, ("layers", "input_shape", "output"))
    layers = record["layers"]
    if not (isinstance(layers, list) and 0 < len(layers) <= MAX_LAYERS):
        raise ModelFileError(f"{path}: the record's 'layers' should be a list of 1 to {MAX_LAYERS}")
    for i, spec in enumerate(layers):
        if not (isinstance(spec, dict) and isinstance(spec.get("config", {}), dict)):
            raise ModelFileError(f"{path}: layer #{i} is not {{'type': ..., 'config': {{...}}}}")
        if spec.get("type") not in LAYER_TYPES:
            raise ModelFileError(f"{path}: layer #{i} has unknown type {spec.get('type')!r}")
        for key, v in spec.get("config", {}).items():
            if not (v is None or isinstance(v, str | bool) or _is_number(v)):
                raise ModelFileError(
                    f"{path}: {_layer_name(i, spec)}: {key!r} is a {type(v).__name__}"
                )
            if _is_int(v) and not 0 <= v <= MAX_SIZE:
                raise ModelFileError(f"{path}: {_layer_name(i, spec)}: {key} = {v} is out of range")
    _kind(path, record, "input_shape", _list_of(_is_int, 3), "[C, H, W], three ints")
    C = record["input_shape"][0]
    if not all(0 < d <= MAX_SIZE for d in record["input_shape"]):
        raise ModelFileError(f"{path}: the input shape {record['input_shape']} is out of range")
    _kind(path, record, "output", lambda v: v in OUTPUTS, f"one of {OUTPUTS}")
    _kind(path, record, "class_names", _or_none(_list_of(_is_str)), "a list of names")
    for key in ("mean", "std"):
        _kind(path, record, key, _or_none(_list_of(_is_number, C)), f"{C} numbers")
    _kind(path, record, "metadata", _or_none(_is_dict), "a dict")
    _kind(path, record, "frozen", _or_none(_list_of(_is_str)), "a list of parameter names")
    in_01 = _or_none(lambda v: _is_number(v) and 0 <= v <= 1)
    _kind(path, record, "threshold", in_01, "a number in [0, 1]")


def _expected_arrays(path, record):
    """{"layers.{i}.{attribute}": shape} of every array the record's layers need."""
    expected = {}
    for i, spec in enumerate(record["layers"]):
        arrays_of = ARRAYS_OF.get(spec["type"])
        if arrays_of is None:
            continue
        try:
            shapes = arrays_of(spec.get("config", {}))
        except KeyError as e:
            raise ModelFileError(f"{path}: {_layer_name(i, spec)} lacks its {e}") from None
        expected.update({f"layers.{i}.{name}": shape for name, shape in shapes.items()})
    return expected


def _check_arrays(path, record, headers):
    """Every layer's arrays, as its config says, against the headers: the keys needed, all
    there, of that shape and a float dtype, and no layer array left over."""
    expected = _expected_arrays(path, record)
    for key, shape in expected.items():
        spec = record["layers"][int(key.split(".")[1])]
        where = _layer_name(int(key.split(".")[1]), spec)
        if key not in headers:
            raise ModelFileError(f"{path}: missing weights {key!r} for {where}")
        got, dtype = headers[key]
        if got != tuple(shape):
            raise ModelFileError(
                f"{path}: {where} needs {key!r} of shape {tuple(shape)}, the file holds {got}"
            )
        if dtype.kind != "f":
            raise ModelFileError(f"{path}: weights {key!r} are {dtype}, not floats")
    extra = sorted(k for k in headers if k.startswith("layers.") and k not in expected)
    if extra:
        raise ModelFileError(f"{path}: arrays {', '.join(extra[:5])} belong to no layer it lists")
    return list(expected)


def _build(path, record):
    """A Sequential from a checked record's architecture (weights still initial)."""
    layers = []
    for i, spec in enumerate(record["layers"]):
        cls = LAYER_TYPES[spec["type"]]
        try:
            layers.append(cls(**spec.get("config", {})))
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: cannot rebuild {_layer_name(i, spec)}: {e}") from None
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

    Raises ModelFileError (naming the file, and the layer where one is at fault) for a
    truncated file, another format, pickled objects, a record of the wrong types, or weights
    missing or of another shape than the record's layers need; all are found before any
    layer is built. The parameters the record lists as frozen come back frozen, and
    model.threshold is the record's threshold (None without one).
    """
    with _Archive(path) as archive:
        record = archive.record(MODEL_FORMAT)
        _check_model_record(archive.path, record)
        keys = _check_arrays(archive.path, record, archive.headers)
        others = sorted(set(archive.headers) - set(keys) - {RECORD_KEY})
        if others:
            raise ModelFileError(f"{archive.path}: holds arrays no layer uses: {others[:5]}")
        arrays = archive.arrays(keys)
    model = _build(archive.path, record)
    _set_weights(archive.path, model, arrays)
    _set_frozen(archive.path, model, record.get("frozen") or [])
    model.threshold = record.get("threshold")
    model.metadata = record.get("metadata") or {}
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

    The model must have the checkpoint's architecture and the optimizer its type; the file
    is checked as `load` checks a model, and its optimizer arrays against the parameters,
    before anything is read into the objects.
    Returns a dict: epoch (last finished, 1-based), history (list of dicts), extra.
    """
    with _Archive(path) as archive:
        path = archive.path
        record = archive.record(CHECKPOINT_FORMAT)
        _check_model_record(path, record)
        _check_checkpoint_record(path, record)
        keys = _check_arrays(path, record, archive.headers)
        same = record["layers"] == _architecture(model)
        same &= record["input_shape"] == list(model.input_shape)
        same &= record["output"] == model.output  # softmax or sigmoid head
        if not same:
            raise ModelFileError(
                f"{path} was written for another architecture or input shape than this model "
                "(same --preset, --image-size, classes and --output needed to resume)"
            )
        opt = record["optimizer"]
        if opt["type"] != type(optimizer).__name__:
            raise ModelFileError(
                f"{path} holds {opt['type']} state, the optimizer is {type(optimizer).__name__}"
            )
        shapes = [p.shape for p in optimizer.parameters]  # in the optimizer's (group) order
        lists = {key: [f"optim.{key}.{j}" for j in range(n)] for key, n in opt["lists"].items()}
        for key, names in lists.items():
            got = [archive.headers[k][0] if k in archive.headers else None for k in names]
            if got != shapes:
                raise ModelFileError(
                    f"{path}: its optimizer state {key!r} ({len(names)} arrays) does not fit "
                    f"the model's {len(shapes)} parameters"
                )
        optim_keys = [k for names in lists.values() for k in names]
        others = sorted(set(archive.headers) - set(keys) - set(optim_keys) - {RECORD_KEY})
        if others:
            raise ModelFileError(f"{path}: holds arrays no layer or optimizer uses: {others[:5]}")
        arrays = archive.arrays(keys + optim_keys)
    state = dict(opt["scalars"]) | {key: [arrays[k] for k in names] for key, names in lists.items()}
    try:
        optimizer.load_state_dict(state)
        set_dropout_states(model, record["dropout_states"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ModelFileError(f"{path}: its optimizer or Dropout state does not fit: {e}") from None
    _set_weights(path, model, arrays)
    return {"epoch": record["epoch"], "history": record["history"], "extra": record["extra"]}


def _check_checkpoint_record(path, record):
    """The JSON types of what a checkpoint adds to a model record."""
    _require(path, record, ("epoch", "history", "optimizer", "dropout_states"))
    _kind(path, record, "epoch", lambda v: _is_int(v) and v >= 0, "an epoch number")
    _kind(path, record, "history", _list_of(_is_dict), "a list of dicts")
    _kind(path, record, "extra", _is_dict, "a dict")
    layers = record["layers"]
    dropouts = {str(i) for i, spec in enumerate(layers) if spec["type"] == "Dropout"}
    states = record["dropout_states"]
    if not (_is_dict(states) and set(states) <= dropouts and all(map(_is_dict, states.values()))):
        raise ModelFileError(f"{path}: its Dropout states do not match its Dropout layers")
    opt, n = record["optimizer"], len(_expected_arrays(path, record))
    if not (
        _is_dict(opt)
        and _is_str(opt.get("type"))
        and _is_dict(opt.get("scalars"))
        and _is_dict(opt.get("lists"))
        and all(_is_int(k) and 0 <= k <= n for k in opt["lists"].values())
    ):
        raise ModelFileError(
            f"{path}: its optimizer record should be {{'type': name, 'scalars': {{...}}, "
            f"'lists': {{name: a count up to {n}}}}}"
        )


def checkpoint_epoch(path):
    """The last finished epoch a readable checkpoint at `path` holds, else None (no error)."""
    try:
        with _Archive(path) as archive:
            epoch = archive.record(CHECKPOINT_FORMAT).get("epoch")
    except (ModelFileError, OSError):
        return None
    return epoch if _is_int(epoch) else None


# ----------------------------------------------------------------------------- tables

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "lr")


def write_history_csv(path, history):
    """history.csv: one row per epoch, columns HISTORY_COLUMNS (empty cell for no value)."""
    rows = [["" if row.get(k) is None else row[k] for k in HISTORY_COLUMNS] for row in history]
    write_csv(path, [HISTORY_COLUMNS, *rows])


def write_csv(path, rows):
    """A CSV file of `rows` (lists of cells), written through atomic_write."""

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
            csv.writer(f).writerows(rows)

    atomic_write(path, write)


def write_confusion_csv(path, cm, class_names):
    """confusion.csv: header "true \\ predicted", class names; one row per true class."""
    rows = [[str(name)] + [int(v) for v in row] for name, row in zip(class_names, np.asarray(cm))]
    write_csv(path, [["true \\ predicted"] + [str(c) for c in class_names], *rows])
