"""The PneumoniaMNIST three-way table: test figures at the validation-chosen threshold.

    python docs/results/pneumoniamnist-screening/summarize.py runs/xray-paper-s{0,1,2} \
        runs/xray-paper13-s{0,1,2} runs/xray-paper_bn-s{0,1,2} runs/xray-ft-paper13aug-s{0,1,2} \
        --json docs/results/pneumoniamnist-screening/runs.json

Reads each run folder's results.json (written by examples/train_xray.py), groups the runs
by their folder name without its "-s<seed>" ending, and prints one Markdown row per run and
one per group: test ROC AUC, and sensitivity and specificity at the threshold chosen on
the validation split, as mean +- standard deviation over the seeds (min-max beside), plus
the runs' figures as JSON (--json FILE).
"""

import argparse
import json
import os
import re

import numpy as np

FIGURES = ("auc", "sensitivity", "specificity", "ppv", "npv", "accuracy", "f1")


def read(folder):
    with open(os.path.join(folder, "results.json")) as f:
        results = json.load(f)
    s = results["screening"]
    row = {k: s["figures"][k] for k in FIGURES}
    return {
        "run": os.path.basename(os.path.normpath(folder)),
        "seed": results["settings"]["seed"],
        "threshold": s["threshold"],
        "val_sensitivity": s["val"]["sensitivity"],
        "best_epoch": results["best_epoch"],
        "epochs": results["epochs_run"],
        "seconds": results["train_seconds"],
        "figures": row,
        "at_0.5": {k: s["at_0.5"][k] for k in ("sensitivity", "specificity")},
    }


def cell(f):
    return f"{f['value']:.3f} ({f['low']:.3f}-{f['high']:.3f})"


def spread(values):
    v = np.asarray(values, float)
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"**{v.mean():.3f} ± {sd:.3f}** ({v.min():.3f}-{v.max():.3f})"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders with results.json")
    p.add_argument("--json", help="also write the runs' figures to this file")
    args = p.parse_args()
    runs = [read(folder) for folder in args.runs]
    print("| run | seed | threshold | test AUC (95% CI) | sensitivity | specificity | "
          "at 0.5: sens / spec |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        f, h = r["figures"], r["at_0.5"]
        print(f"| {r['run']} | {r['seed']} | {r['threshold']:.4g} | {cell(f['auc'])} | "
              f"{cell(f['sensitivity'])} | {cell(f['specificity'])} | "
              f"{h['sensitivity']:.3f} / {h['specificity']:.3f} |")  # fmt: skip
    groups = {}
    for r in runs:
        groups.setdefault(re.sub(r"-s\d+$", "", r["run"]), []).append(r)
    print("\n| variant | seeds | test AUC | specificity | sensitivity |")
    print("| --- | --- | --- | --- | --- |")
    for name, rs in groups.items():
        col = {k: [r["figures"][k]["value"] for r in rs] for k in FIGURES}
        print(f"| {name} | {len(rs)} | {spread(col['auc'])} | {spread(col['specificity'])} | "
              f"{spread(col['sensitivity'])} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)


if __name__ == "__main__":
    main()
