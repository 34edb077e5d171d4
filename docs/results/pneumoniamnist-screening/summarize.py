"""The PneumoniaMNIST three-way table: test figures at the validation-chosen threshold.

    python docs/results/pneumoniamnist-screening/summarize.py runs/xray-paper-s{0,1,2} \
        runs/xray-paper13-s{0,1,2} runs/xray-paper_bn-s{0,1,2} runs/xray-ft-paper13aug-s{0,1,2} \
        --json docs/results/pneumoniamnist-screening/runs.json

Reads each run folder's results.json (written by examples/train_xray.py), groups the runs
by their folder name without its "-s<seed>" ending, and prints one Markdown row per run and
one per group: test ROC AUC, and sensitivity and specificity at the threshold chosen on
the validation split, as mean +- standard deviation over the seeds (min-max beside), plus
the runs' figures as JSON (--json FILE).

--external NAME also reads NAME from each run folder, as written by
`python -m minicnn evaluate RUN/model.npz --data OTHER --json RUN/NAME` (another test set,
scored at the run's stored threshold), and adds its figures to both tables:

    python docs/results/pneumoniamnist-screening/summarize.py runs/e20-base-s{0,1,2} \
        --external pneumoniamnist-test.json
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
        "val_specificity": s["val"]["specificity"],
    }


def read_external(folder, name):
    """The one-view screening figures of `minicnn evaluate --json` in folder/name."""
    with open(os.path.join(folder, name)) as f:
        evaluated = json.load(f)
    s = evaluated["views"][0]["screening"]
    return {"data": evaluated["data"]["source"], "split": evaluated["data"]["split"],
            "figures": {k: s["figures"][k] for k in FIGURES}}  # fmt: skip


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
    p.add_argument("--external", metavar="NAME", help="evaluate's --json file in each run")
    args = p.parse_args()
    runs = [read(folder) for folder in args.runs]
    if args.external:
        for r, folder in zip(runs, args.runs):
            r["external"] = read_external(folder, args.external)
        external_tables(runs)
        return write(runs, args.json)
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
    write(runs, args.json)


def write(runs, path):
    if path:
        with open(path, "w") as f:
            json.dump(runs, f, indent=2)


def external_tables(runs):
    """Validation, the run's own test split and the external test, per run and per variant."""
    print("| run | threshold | val: sens / spec | test AUC | test sens / spec | "
          "external AUC (95% CI) | external sensitivity | external specificity |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        f, e = r["figures"], r["external"]["figures"]
        print(f"| {r['run']} | {r['threshold']:.4g} | {r['val_sensitivity']:.3f} / "
              f"{r['val_specificity']:.3f} | {f['auc']['value']:.3f} | "
              f"{f['sensitivity']['value']:.3f} / {f['specificity']['value']:.3f} | "
              f"{cell(e['auc'])} | {cell(e['sensitivity'])} | "
              f"{cell(e['specificity'])} |")  # fmt: skip
    groups = {}
    for r in runs:
        groups.setdefault(re.sub(r"-s\d+$", "", r["run"]), []).append(r)
    print("\n| variant | seeds | test AUC | test specificity | external AUC | "
          "external sensitivity | external specificity |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, rs in groups.items():
        own = {k: [r["figures"][k]["value"] for r in rs] for k in ("auc", "specificity")}
        ext = {k: [r["external"]["figures"][k]["value"] for r in rs] for k in FIGURES}
        print(f"| {name} | {len(rs)} | {spread(own['auc'])} | {spread(own['specificity'])} | "
              f"{spread(ext['auc'])} | {spread(ext['sensitivity'])} | "
              f"{spread(ext['specificity'])} |")  # fmt: skip


if __name__ == "__main__":
    main()
