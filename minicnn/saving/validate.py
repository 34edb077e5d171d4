"""Checking a record before anything is built from it: its JSON types, then its arrays.

Every layer's configuration is checked against the arrays the file holds (ARRAYS_OF gives
their shapes from the configuration alone): a file that lies about its layers is a
ModelFileError naming the layer, never a huge allocation nor a traceback from a constructor.
"""

from ..heads import OUTPUTS
from .record import LAYER_TYPES, PREFIX, ModelFileError

MAX_SIZE = 1 << 24  # any int in a layer's configuration or the input shape
MAX_LAYERS = 10_000


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_str(v):
    return isinstance(v, str)


def is_dict(v):
    return isinstance(v, dict)


def list_of(ok, length=None):
    """A check for a JSON list whose items all pass `ok` (of `length` items, if given)."""
    return lambda v: isinstance(v, list) and len(v) == (length or len(v)) and all(map(ok, v))


def or_none(ok):
    return lambda v: v is None or ok(v)


def require(path, record, keys):
    missing = [k for k in keys if k not in record]
    if missing:
        raise ModelFileError(f"{path}: the record lacks {', '.join(missing)}")


def kind(path, record, key, ok, wanted):
    if not ok(record.get(key)):
        got = type(record.get(key)).__name__
        raise ModelFileError(f"{path}: the record's {key!r} should be {wanted}, is a {got}")


def layer_name(where, spec):
    """ "layer #3 Conv2D(in_channels=3, ...)"; where: "layers.3" or "layers.3.branch.0"."""
    args = ", ".join(f"{k}={v!r}" for k, v in spec.get("config", {}).items())
    text = f"layer #{where.removeprefix(PREFIX + '.')} {spec['type']}({args})"
    return text if len(text) <= 160 else text[:157] + "..."


def walk_records(specs, prefix=PREFIX):
    """(path, spec) of every layer of a checked record, as record.walk walks a model."""
    for i, spec in enumerate(specs):
        path = f"{prefix}.{i}"
        yield path, spec
        for name, inner in spec.get("children", {}).items():
            yield from walk_records(inner or [], f"{path}.{name}")


def _check_layers(path, specs, prefix=PREFIX):
    """Each layer record: a known type, a config of plain values in range, and for a type
    that holds layers (CHILDREN), exactly those lists of layers, checked the same way."""
    for i, spec in enumerate(specs):
        where = f"{prefix}.{i}"
        number = where.removeprefix(PREFIX + ".")
        if not (is_dict(spec) and is_dict(spec.get("config", {}))):
            raise ModelFileError(
                f"{path}: layer #{number} is not {{'type': ..., 'config': {{...}}}}"
            )
        if not (is_str(spec.get("type")) and spec["type"] in LAYER_TYPES):
            raise ModelFileError(f"{path}: layer #{number} has unknown type {spec.get('type')!r}")
        for key, v in spec.get("config", {}).items():
            if not (v is None or isinstance(v, str | bool) or is_number(v)):
                raise ModelFileError(
                    f"{path}: {layer_name(where, spec)}: {key!r} is a {type(v).__name__}"
                )
            if is_int(v) and not 0 <= v <= MAX_SIZE:
                raise ModelFileError(
                    f"{path}: {layer_name(where, spec)}: {key} = {v} is out of range"
                )
        names = getattr(LAYER_TYPES[spec["type"]], "CHILDREN", ())
        children = spec.get("children", {} if not names else None)
        held = or_none(lambda v: isinstance(v, list) and len(v) <= MAX_LAYERS)
        if not (
            is_dict(children) and set(children) == set(names) and all(map(held, children.values()))
        ):
            wanted = ", ".join(names) or "no layers"
            raise ModelFileError(
                f"{path}: {layer_name(where, spec)} should hold {wanted} (lists of layers or null)"
            )
        for name, inner in children.items():
            _check_layers(path, inner or [], f"{where}.{name}")


def check_model_record(path, record):
    """The JSON types and ranges of a model record, each layer's config among them."""
    require(path, record, ("layers", "input_shape", "output"))
    layers = record["layers"]
    if not (isinstance(layers, list) and 0 < len(layers) <= MAX_LAYERS):
        raise ModelFileError(f"{path}: the record's 'layers' should be a list of 1 to {MAX_LAYERS}")
    _check_layers(path, layers)
    kind(path, record, "input_shape", list_of(is_int, 3), "[C, H, W], three ints")
    C = record["input_shape"][0]
    if not all(0 < d <= MAX_SIZE for d in record["input_shape"]):
        raise ModelFileError(f"{path}: the input shape {record['input_shape']} is out of range")
    kind(path, record, "output", lambda v: v in OUTPUTS, f"one of {OUTPUTS}")
    kind(path, record, "class_names", or_none(list_of(is_str)), "a list of names")
    for key in ("mean", "std"):
        kind(path, record, key, or_none(list_of(is_number, C)), f"{C} numbers")
    kind(path, record, "metadata", or_none(is_dict), "a dict")
    kind(path, record, "frozen", or_none(list_of(is_str)), "a list of parameter names")
    in_01 = or_none(lambda v: is_number(v) and 0 <= v <= 1)
    kind(path, record, "threshold", in_01, "a number in [0, 1]")


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


def _layer_arrays(path, record):
    """(key, shape, layer's name) of every array a checked record's layers need."""
    for where, spec in walk_records(record["layers"]):
        arrays_of = ARRAYS_OF.get(spec["type"])
        if arrays_of is None:
            continue
        try:
            shapes = arrays_of(spec.get("config", {}))
        except KeyError as e:
            raise ModelFileError(f"{path}: {layer_name(where, spec)} lacks its {e}") from None
        for name, shape in shapes.items():
            yield f"{where}.{name}", tuple(shape), layer_name(where, spec)


def expected_arrays(path, record):
    """{"layers.{i}.{attribute}": shape} of every array the record's layers need."""
    return {key: shape for key, shape, _ in _layer_arrays(path, record)}


def check_arrays(path, record, headers):
    """Every layer's arrays, as its config says, against the headers: the keys needed, all
    there, of that shape and a float dtype, and no layer array left over."""
    expected = {}
    for key, shape, where in _layer_arrays(path, record):
        if key not in headers:
            raise ModelFileError(f"{path}: missing weights {key!r} for {where}")
        got, dtype = headers[key]
        if got != shape:
            raise ModelFileError(
                f"{path}: {where} needs {key!r} of shape {shape}, the file holds {got}"
            )
        if dtype.kind != "f":
            raise ModelFileError(f"{path}: weights {key!r} are {dtype}, not floats")
        expected[key] = shape
    extra = sorted(k for k in headers if k.startswith(PREFIX + ".") and k not in expected)
    if extra:
        raise ModelFileError(f"{path}: arrays {', '.join(extra[:5])} belong to no layer it lists")
    return list(expected)
