"""Training checkpoints: a model file plus what it takes to continue training exactly.

checkpoint.npz          the model file's arrays and record (record.py), and:
    "optim.m.0", ...    the optimizer's state arrays (Adam: m and v; SGD: velocity)
    the record also holds the epoch, the step, the history, the optimizer's scalars (Adam's
    step count t), every Dropout layer's generator state, the run's settings (the model's
    `metadata`) and whatever the trainer adds (its seed).

epoch is the last finished epoch and step the steps taken since: 0 after an epoch's end, k
for a run stopped after step k of the next epoch. A checkpoint without a step (written before
steps were kept) is one of an epoch's end.
"""

from ..layers import Dropout
from .archive import Archive
from .atomic import atomic_savez
from .model import set_weights
from .record import (
    CHECKPOINT_FORMAT,
    PREFIX,
    RECORD_KEY,
    ModelFileError,
    architecture,
    model_arrays,
    model_record,
    record_array,
    walk,
)
from .validate import (
    check_arrays,
    check_model_record,
    expected_arrays,
    is_dict,
    is_int,
    is_str,
    kind,
    list_of,
    require,
    walk_records,
)


def _key(where):
    """A layer's key among the Dropout states: "3" for layers.3, "3.branch.0" if nested."""
    return where.removeprefix(PREFIX + ".")


def dropout_states(model):
    """The bit-generator state (a JSON-ready dict) of every Dropout layer, by layer index."""
    return {
        _key(where): layer.rng.bit_generator.state
        for where, layer in walk(model.layers)
        if isinstance(layer, Dropout)
    }


def set_dropout_states(model, states):
    """Restore what dropout_states returned into the model's Dropout layers."""
    layers = {_key(where): layer for where, layer in walk(model.layers)}
    for key, state in states.items():
        layers[key].rng.bit_generator.state = state


def save_checkpoint(path, model, optimizer, epoch, history, extra=None, step=0):
    """Write everything needed to continue training after `epoch` (1-based) to `path`.

    step: the steps taken in epoch + 1 (0: at the end of `epoch`); extra: JSON-serialisable
    dict kept in the record (the trainer stores its seed there). The model's `metadata`
    attribute (a dict: the run's settings), if any, is kept as the record's metadata.
    """
    record = model_record(model, metadata=getattr(model, "metadata", None))
    record["format"] = CHECKPOINT_FORMAT
    record["epoch"] = int(epoch)
    record["step"] = int(step)
    record["history"] = list(history)
    record["dropout_states"] = dropout_states(model)
    record["optimizer"] = {"type": type(optimizer).__name__, "scalars": {}, "lists": {}}
    arrays = model_arrays(model)
    for key, value in optimizer.state_dict().items():
        if isinstance(value, list | tuple):
            record["optimizer"]["lists"][key] = len(value)
            for j, a in enumerate(value):
                arrays[f"optim.{key}.{j}"] = a
        else:
            record["optimizer"]["scalars"][key] = value.item() if hasattr(value, "item") else value
    record["extra"] = extra or {}
    arrays[RECORD_KEY] = record_array(record)
    atomic_savez(path, arrays)


def load_checkpoint(path, model, optimizer):
    """Restore weights, optimizer state and Dropout generators from `path` into the objects.

    The model must have the checkpoint's architecture and the optimizer its type; the file
    is checked as `load` checks a model, and its optimizer arrays against the parameters,
    before anything is read into the objects.
    Returns a dict: epoch (last finished, 1-based), step (taken since; 0 in a checkpoint of an
    epoch's end, and in older ones), history (list of dicts), extra.
    """
    with Archive(path) as archive:
        path = archive.path
        record = archive.record(CHECKPOINT_FORMAT)
        check_model_record(path, record)
        _check_checkpoint_record(path, record)
        keys = check_arrays(path, record, archive.headers)
        same = record["layers"] == architecture(model)
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
    set_weights(path, model, arrays)
    step = record.get("step", 0)
    return {"epoch": record["epoch"], "step": step, "history": record["history"],
            "extra": record["extra"]}  # fmt: skip


def _check_checkpoint_record(path, record):
    """The JSON types of what a checkpoint adds to a model record."""
    require(path, record, ("epoch", "history", "optimizer", "dropout_states"))
    kind(path, record, "epoch", lambda v: is_int(v) and v >= 0, "an epoch number")
    if "step" in record:  # older checkpoints have none: an epoch's end
        kind(path, record, "step", lambda v: is_int(v) and v >= 0, "a step number")
    kind(path, record, "history", list_of(is_dict), "a list of dicts")
    kind(path, record, "extra", is_dict, "a dict")
    layers = walk_records(record["layers"])
    dropouts = {_key(where) for where, spec in layers if spec["type"] == "Dropout"}
    states = record["dropout_states"]
    if not (is_dict(states) and set(states) <= dropouts and all(map(is_dict, states.values()))):
        raise ModelFileError(f"{path}: its Dropout states do not match its Dropout layers")
    opt, n = record["optimizer"], len(expected_arrays(path, record))
    if not (
        is_dict(opt)
        and is_str(opt.get("type"))
        and is_dict(opt.get("scalars"))
        and is_dict(opt.get("lists"))
        and all(is_int(k) and 0 <= k <= n for k in opt["lists"].values())
    ):
        raise ModelFileError(
            f"{path}: its optimizer record should be {{'type': name, 'scalars': {{...}}, "
            f"'lists': {{name: a count up to {n}}}}}"
        )


def checkpoint_epoch(path):
    """The last finished epoch a readable checkpoint at `path` holds, else None (no error)."""
    try:
        with Archive(path) as archive:
            epoch = archive.record(CHECKPOINT_FORMAT).get("epoch")
    except (ModelFileError, OSError):
        return None
    return epoch if is_int(epoch) else None


def checkpoint_info(path):
    """What a readable checkpoint at `path` says of its run, without loading it, else None.

    Returns a dict: epoch (last finished), step (taken since), settings (the run's, as
    stored by the trainer; None in a checkpoint that has none, such as older ones).
    """
    try:
        with Archive(path) as archive:
            record = archive.record(CHECKPOINT_FORMAT)
    except (ModelFileError, OSError):
        return None
    epoch, step, settings = record.get("epoch"), record.get("step", 0), record.get("metadata")
    if not (is_int(epoch) and is_int(step)):
        return None
    settings = settings if is_dict(settings) and settings else None  # older ones: {}
    return {"epoch": epoch, "step": step, "settings": settings}
