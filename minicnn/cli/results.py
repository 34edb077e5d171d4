"""The result files of a training run: the best model evaluated, every figure written to --out.

write_results evaluates the best model as a user loads it (model.npz) on the test split (the
validation split when there is none) and writes, each through a temporary file:
history.csv, curves.png, confusion.csv, confusion.png (up to MAX_CONFUSION_PICTURE classes)
and results.json. Two classes are reported at a threshold chosen on validation, with
intervals, roc.png and calibration.png (screening.py); --tta adds the figures over each image
and its mirror. results.json also says how the run was shared (data_parallel: MPI ranks and
threads per rank; one process: ranks 1) and how the splits were carved (data: group_by, seed
(--split-seed, the carve's), and load's notes: groups and images per side).
"""

import json
import os

import numpy as np

from .. import io
from ..distributed import world
from ..fast import threads
from ..io import atomic_write, write_confusion_csv, write_history_csv
from ..metrics import binary_metrics, confusion_matrix
from ..plots import plot_confusion, plot_curves
from ..train import evaluate
from . import screening, transfer
from .run_folder import RunFolder

MAX_CONFUSION_PICTURE = 20  # classes; above, only confusion.csv


def write_results(run, history, seconds, loss_fn, data, settings, extra=None):
    """Evaluate the best model (as a user loads it) and write every result file to run.path.

    Two classes: class 1 is the positive one, predicted when P(class 1) >= a threshold
    chosen on the validation split (screening.report: the figures with intervals,
    roc.png, the threshold stored in model.npz, results.json's `screening` section).
    extra: more results.json keys. Under mpiexec, rank 0 alone does this (the others return).
    """
    if not world().is_root:
        return
    best = io.load(run.model)
    test, names, K = data.test, data.ds.class_names, data.ds.num_classes
    result = evaluate(best, test, loss_fn)
    print(
        f"\n{data.test_name} set ({len(test)} images), model of epoch "
        f"{best.metadata.get('epoch', len(history))}:"
    )
    metrics = {"split": data.test_name, "images": len(test), "loss": result["loss"]}
    metrics["accuracy"] = result["accuracy"]
    at_half = "  at threshold 0.5" if K == 2 else ""
    print(f"  accuracy {result['accuracy']:.1%}   (chance {1 / K:.1%}){at_half}")
    if "top5" in result:
        print(f"  top-5 accuracy {result['top5']:.1%}")
        metrics["top5"] = result["top5"]
    if settings.get("tta"):  # the same model shown more views of each test image
        metrics["tta"] = tta_figures(best, test, loss_fn, settings["tta"])
    predicted, extra = result["predictions"], dict(extra or {})
    if K == 2:
        threshold, extra["screening"] = screening.report(best, data, result, settings, run)
        scores = result["probs"][:, 1]  # P(class 1)
        metrics |= binary_metrics(result["labels"], scores, threshold) | {"threshold": threshold}
        predicted = (scores >= threshold).astype(np.int64)

    cm = confusion_matrix(result["labels"], predicted, K)
    title = f"{transfer.network(settings)} on {settings['data_name']}"
    write_history_csv(run.file("history.csv"), history)
    atomic_write(run.file("curves.png"), lambda tmp: plot_curves(history, tmp, title=title))
    write_confusion_csv(run.file("confusion.csv"), cm, names)
    if K <= MAX_CONFUSION_PICTURE:
        atomic_write(run.file("confusion.png"), lambda tmp: plot_confusion(cm, names, tmp))
    results = {
        "metrics": metrics,
        "best_epoch": best.metadata.get("epoch"),
        "epochs_run": len(history),
        "train_seconds": round(seconds, 1),
        "history": history,
        "settings": settings,
        "data_parallel": {"ranks": world().size, "threads": threads.get_num_threads()},
        "data": {
            "classes": K,
            "class_names": names,
            "group_by": settings.get("group_by") if settings.get("data") else None,
            "seed": settings.get("split_seed", settings.get("seed")),  # the carve's
            "notes": data.ds.notes,
            "train": len(data.train),
            "val": len(data.val) if data.val else 0,
            "test": len(test),
        },
        **extra,
    }
    text = json.dumps(results, indent=2, default=float)
    atomic_write(run.file("results.json"), lambda tmp: _write_text(tmp, text))
    files = sorted(set(os.listdir(run.path)) - {RunFolder.LOCK})
    print(f"\nwrote {', '.join(files)} to {run.path}")
    print(f"predict: python -m minicnn predict {run.model} IMAGE [IMAGE ...]")


def tta_figures(model, split, loss_fn, tta):
    """evaluate(..., tta=tta) printed as one line; its figures as a dict for results.json."""
    result = evaluate(model, split, loss_fn, tta=tta)
    figures = {"views": tta, "loss": result["loss"], "accuracy": result["accuracy"]}
    line = f"  with --tta {tta} (each image and its mirror): accuracy {result['accuracy']:.1%}"
    if "top5" in result:
        figures["top5"] = result["top5"]
        line += f", top-5 {result['top5']:.1%}"
    print(line)
    return figures


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
