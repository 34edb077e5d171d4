"""Results of a run as plain files: CSV tables and JSON, each written atomically."""

import csv
import json

import numpy as np

from .atomic import atomic_write

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "lr")


def write_text(path, text):
    """A UTF-8 text file holding `text`, written through atomic_write."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def write_json(path, obj):
    """`obj` as indented JSON (results.json); NumPy numbers are written as floats."""
    write_text(path, json.dumps(obj, indent=2, default=float))


def write_csv(path, rows):
    """A CSV file of `rows` (lists of cells), written through atomic_write."""

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:
            csv.writer(f).writerows(rows)

    atomic_write(path, write)


def write_history_csv(path, history):
    """history.csv: one row per epoch, columns HISTORY_COLUMNS (empty cell for no value)."""
    rows = [["" if row.get(k) is None else row[k] for k in HISTORY_COLUMNS] for row in history]
    write_csv(path, [HISTORY_COLUMNS, *rows])


def write_confusion_csv(path, cm, class_names):
    """confusion.csv: header "true \\ predicted", class names; one row per true class."""
    rows = [[str(name)] + [int(v) for v in row] for name, row in zip(class_names, np.asarray(cm))]
    write_csv(path, [["true \\ predicted"] + [str(c) for c in class_names], *rows])
