"""Print a run's results as Markdown: the numbers in the README's results section.

    python docs/results/summarize.py runs/paper-tiny-imagenet-200

Reads what examples/train_paper.py and train_xray.py leave in --out (history.csv and
results.json) and prints the epoch table and the final metrics; nothing is typed by hand.
For a run still in progress (only checkpoint.npz so far) it prints the epochs done.
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np


def main(run):
    run = Path(run)
    if not (run / "results.json").exists():  # still training: the checkpoint's history
        with np.load(run / "checkpoint.npz", allow_pickle=False) as f:
            history = json.loads(str(f["minicnn.json"]))["history"]
        results = None
    else:
        history = list(csv.DictReader(open(run / "history.csv")))
        results = json.loads((run / "results.json").read_text())
    print("| epoch | train loss | train acc | val loss | val acc | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for h in history:
        print(
            f"| {h['epoch']} | {float(h['train_loss']):.3f} | {float(h['train_acc']):.1%} "
            f"| {float(h['val_loss']):.3f} | {float(h['val_acc']):.1%} "
            f"| {float(h['seconds']):.0f} |"
        )
    if results is None:
        print(f"\n(in progress: {len(history)} epochs done)")
        return
    m = results["metrics"]
    print(
        f"\nbest epoch {results['best_epoch']} of {results['epochs_run']}, evaluated on the "
        f"{m['split']} split ({m['images']} images):"
    )
    for key in ("accuracy", "top5", "sensitivity", "specificity", "precision", "f1", "auc"):
        if key in m:
            print(f"- {key}: {m[key]:.3f}")
    print(f"- loss: {m['loss']:.3f}")
    print(
        f"- training time: {results['train_seconds'] / 60:.1f} min for the epochs of this process"
    )


if __name__ == "__main__":
    main(sys.argv[1])
