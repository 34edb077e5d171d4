"""Saving: model files, training checkpoints and results, each written atomically.

record.py      the model file's format: the record and the arrays' names (no pickle)
archive.py     reading an .npz safely: headers first, data once checked
validate.py    the record's types and each layer's arrays, checked before building
model.py       save(model, path) and load(path)
checkpoint.py  save_checkpoint, load_checkpoint: a model file plus the optimizer's state
results.py     CSV and JSON results (history.csv, confusion.csv, results.json)
atomic.py      every write goes to a temporary file, then is renamed into place
"""

from .archive import MAX_NESTING, MAX_RECORD_CHARS
from .atomic import WriteError, atomic_savez, atomic_write
from .checkpoint import (
    checkpoint_epoch,
    dropout_states,
    load_checkpoint,
    save_checkpoint,
    set_dropout_states,
)
from .model import load, save
from .record import (
    CHECKPOINT_FORMAT,
    LAYER_TYPES,
    MODEL_FORMAT,
    RECORD_KEY,
    VERSION,
    ModelFileError,
    model_record,
)
from .results import (
    HISTORY_COLUMNS,
    write_confusion_csv,
    write_csv,
    write_history_csv,
    write_json,
    write_text,
)
from .validate import ARRAYS_OF, MAX_LAYERS, MAX_SIZE

__all__ = [
    "ARRAYS_OF",
    "CHECKPOINT_FORMAT",
    "HISTORY_COLUMNS",
    "LAYER_TYPES",
    "MAX_LAYERS",
    "MAX_NESTING",
    "MAX_RECORD_CHARS",
    "MAX_SIZE",
    "MODEL_FORMAT",
    "RECORD_KEY",
    "VERSION",
    "ModelFileError",
    "WriteError",
    "atomic_savez",
    "atomic_write",
    "checkpoint_epoch",
    "dropout_states",
    "load",
    "load_checkpoint",
    "model_record",
    "save",
    "save_checkpoint",
    "set_dropout_states",
    "write_confusion_csv",
    "write_csv",
    "write_history_csv",
    "write_json",
    "write_text",
]
