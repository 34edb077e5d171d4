"""Two-class runs of minicnn train (and the examples), reported at an operating point.

The decision threshold is chosen on the validation split (metrics.choose_threshold: by
default the highest threshold whose validation sensitivity is at least 0.95;
--target-sensitivity changes the target, --threshold fixes it), then applied to the test
split, where every screening figure gets a 95% bootstrap interval (--bootstrap resamples,
seeded by --seed). `report` prints them, writes roc.png, stores the threshold in model.npz
(python -m minicnn predict uses it) and returns results.json's `screening` section.

`calibration` says how far P(class 1) can be read as a probability: the Brier score and the
expected calibration error (ECE), with intervals over the same resamples, and calibration.png,
the reliability diagram (metrics.bootstrap_calibration, plots.plot_calibration).

`screening_section` computes the whole `screening` section from the labels and P(class 1);
minicnn evaluate --json writes the same section for each view, so both files read alike.
"""

import math

import numpy as np

from .. import io
from ..io import atomic_write
from ..metrics import (
    CALIBRATION_BINS,
    SCREENING_FIGURES,
    bootstrap,
    bootstrap_calibration,
    choose_threshold,
    reliability_curve,
    roc_curve,
    screening_metrics,
)
from ..plots import plot_calibration, plot_roc
from ..train import evaluate
from .common import CommandError

RESAMPLES = 2000


def add_options(p):
    """--target-sensitivity, --threshold and --bootstrap on a training command's parser."""
    add = p.add_argument
    add(
        "--target-sensitivity",
        type=float,
        default=0.95,
        help="two classes: choose the highest threshold whose validation sensitivity is at "
        "least this (0.95)",
    )
    add(
        "--threshold",
        type=float,
        help="two classes: call class 1 when P(class 1) >= this, instead of choosing it on "
        "the validation split",
    )
    add(
        "--bootstrap",
        type=int,
        default=RESAMPLES,
        metavar="N",
        help=f"two classes: bootstrap resamples for the 95%% intervals ({RESAMPLES})",
    )


def check_options(args):
    """The screening options' ranges; a CommandError names the option."""
    if not 0 < args.target_sensitivity <= 1:
        raise CommandError(f"--target-sensitivity must be in (0, 1], got {args.target_sensitivity}")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise CommandError(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.bootstrap < 1:
        raise CommandError(f"--bootstrap must be 1 or more, got {args.bootstrap}")


def _meanings(names):
    neg, pos = names
    return {
        "sensitivity": f"share of {pos} images found",
        "specificity": f"share of {neg} images cleared",
        "ppv": f"share of {pos} calls that are right (precision)",
        "npv": f"share of {neg} calls that are right",
        "accuracy": "at this threshold",
        "f1": "harmonic mean of precision and sensitivity",
        "auc": "ROC AUC, threshold-free",
    }


def report(best, data, result, settings, run):
    """Choose the threshold on val, report the test split at it; returns (threshold, section).

    best: the saved best model (its file is rewritten with the threshold); data: the run's
    Splits; result: evaluate(best, data.test); settings: the run's options (threshold,
    target_sensitivity, bootstrap, seed).
    """
    names = list(data.ds.class_names)
    val = data.val
    val_scores = evaluate(best, val)["probs"][:, 1] if val is not None else None
    choice = choose_threshold(
        None if val is None else val.labels,
        val_scores,
        settings["target_sensitivity"],
        settings["threshold"],
    )
    t = choice["threshold"]
    labels, scores = result["labels"], result["probs"][:, 1]
    resamples, seed = settings["bootstrap"], settings["seed"]
    section = screening_section(names, choice, data.test_name, labels, scores, resamples, seed)
    intervals, counts, at_half = section["figures"], section["counts"], section["at_0.5"]

    if choice["rule"] == "target_sensitivity":
        v = choice["val"]
        how = (
            f"the highest with validation sensitivity >= {choice['target_sensitivity']:g} "
            f"(val: sensitivity {v['sensitivity']:.3f}, specificity {v['specificity']:.3f})"
        )
    elif choice["rule"] == "fixed":
        how = "fixed by --threshold"
    else:
        how = choice["note"]
        print(f"  note: {choice['note']}")
    if data.test_name == "val" and choice["rule"] == "target_sensitivity":
        print("  note: no test split, so the threshold is chosen on the split it is measured "
              "on: the figures below are optimistic")  # fmt: skip
    print(f"  positive class {names[1]}; threshold {t:.4g}: {how}")
    print(f"  {'':<12} {'value':>6}   95% interval ({resamples:,} bootstrap resamples)")
    for key, meaning in _meanings(names).items():
        f = intervals[key]
        print(f"  {key:<12} {f['value']:6.3f}   {f['low']:.3f} - {f['high']:.3f}   {meaning}")
    print(f"  tp {counts['tp']}  fn {counts['fn']}  fp {counts['fp']}  tn {counts['tn']}")
    print(f"  at threshold 0.5: sensitivity {at_half['sensitivity']:.3f}, specificity "
          f"{at_half['specificity']:.3f} (for comparison)")  # fmt: skip

    fpr, tpr, _ = roc_curve(labels, scores)
    sens, spec = intervals["sensitivity"]["value"], intervals["specificity"]["value"]
    points = [
        (f"threshold {t:.4g} ({choice['rule'].replace('_', ' ')}): sensitivity {sens:.3f}, "
         f"specificity {spec:.3f}", 1 - spec, sens),
        (f"threshold 0.5: sensitivity {at_half['sensitivity']:.3f}, specificity "
         f"{at_half['specificity']:.3f}", 1 - at_half["specificity"], at_half["sensitivity"]),
    ]  # fmt: skip
    title = f"ROC, {data.test_name} split"
    auc = intervals["auc"]["value"]
    atomic_write(run.file("roc.png"), lambda tmp: plot_roc(fpr, tpr, tmp, points, title, auc))
    calibration(labels, scores, names, data.test_name, section["calibration"], run)

    best.threshold = t  # python -m minicnn predict decides with it
    meta = dict(best.metadata, screening={k: section[k] for k in ("threshold", "rule", "note")})
    io.save(best, run.model, metadata=meta)
    return t, section


def calibration(labels, scores, names, split, calibrated, run):
    """Print the Brier score and the ECE of P(class 1) with their bootstrap intervals, and
    write calibration.png (the reliability diagram) to run.

    labels int (N,), scores float (N,) = P(class 1) on `split`; calibrated: their
    calibration_section.
    """
    pos = names[1]
    meanings = {
        "brier": f"mean squared gap between P({pos}) and the truth (0 is perfect)",
        "ece": f"mean gap between P({pos}) and the share of {pos}, bin by bin",
    }
    print(f"  calibration of P({pos}), {calibrated['bins']} bins (same resamples):")
    for key, meaning in meanings.items():
        f = calibrated[key]
        print(f"  {key:<12} {f['value']:6.3f}   {f['low']:.3f} - {f['high']:.3f}   {meaning}")
    curve = reliability_curve(labels, scores, calibrated["bins"])
    per_bin = calibrated["reliability"]
    bars = tuple(np.array(per_bin[k], dtype=float) for k in ("frequency_low", "frequency_high"))
    ece, brier = calibrated["ece"]["value"], calibrated["brier"]["value"]
    title = f"reliability, {split} split"
    atomic_write(run.file("calibration.png"),
                 lambda tmp: plot_calibration(curve, tmp, bars, title, ece, brier))  # fmt: skip


def screening_section(names, choice, split, labels, scores, resamples, seed, source=None):
    """results.json's `screening` section: the threshold, where it comes from, and every figure
    of the split at it, each with its 95% percentile-bootstrap interval.

    names: the two class names, class 1 positive; choice: metrics.choose_threshold's dict
    (threshold, rule, target_sensitivity, note, val); split: the scored split's name;
    labels int (N,), scores float (N,) = P(class 1) there; resamples (0: no intervals, low
    and high null) and seed: the bootstrap's. source: threshold_source, by default "val"
    when chosen there, else choice's rule.
    Keys: positive_class, threshold, threshold_source, rule, target_sensitivity, note, val,
    split, images, counts (tp, fn, fp, tn), figures (SCREENING_FIGURES and auc: value, low,
    high, defined), at_0.5 (screening_metrics at 0.5), calibration (calibration_section),
    bootstrap (resamples, seed, level, method).
    """
    t = choice["threshold"]
    if source is None:
        source = "val" if choice["rule"] == "target_sensitivity" else choice["rule"]
    intervals = bootstrap(labels, scores, t, resamples=resamples, seed=seed)
    counts = screening_metrics(labels, scores, t)
    section = {
        "positive_class": names[1],
        "threshold": t,
        "threshold_source": source,
        **{k: choice[k] for k in ("rule", "target_sensitivity", "note", "val")},
        "split": split,
        "images": len(labels),
        "counts": {k: counts[k] for k in ("tp", "fn", "fp", "tn")},
        "figures": {k: intervals[k] for k in (*SCREENING_FIGURES, "auc")},
        "at_0.5": screening_metrics(labels, scores, 0.5),
        "calibration": calibration_section(labels, scores, resamples, seed),
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "level": intervals["level"],
            "method": f"percentile, over the {split} images",
        },
    }
    if not resamples:  # no intervals: null, not the NaN of an interval of no draws
        for f in (*section["figures"].values(), *(section["calibration"][k] for k in CALIBRATED)):
            f["low"] = f["high"] = None
    return section


CALIBRATED = ("brier", "ece")  # the calibration figures with an interval


def calibration_section(labels, scores, resamples, seed):
    """results.json's `screening.calibration`: brier and ece (value, low, high, defined),
    bins, and per bin of P(class 1) (reliability) its edges, images, mean score, share of
    class 1 and that share's interval (null for an empty bin).

    labels int (N,), scores float (N,) = P(class 1); the resamples are those of the screening
    figures (same count and seed: metrics.bootstrap_calibration).
    """
    c = bootstrap_calibration(labels, scores, CALIBRATION_BINS, resamples=resamples, seed=seed)
    curve = reliability_curve(labels, scores, c["bins"])
    per_bin = {
        "edges": [round(float(e), 6) for e in curve["edges"]],
        "images": curve["count"].tolist(),
        "mean_score": _nulls(curve["mean_score"]),
        "frequency": _nulls(curve["frequency"]),
        "frequency_low": _nulls(c["frequency"]["low"]),
        "frequency_high": _nulls(c["frequency"]["high"]),
    }
    return {**{k: c[k] for k in CALIBRATED}, "bins": c["bins"], "reliability": per_bin}


def _nulls(values):
    """Floats as a list, nan (an empty bin) as None, so that results.json stays plain JSON."""
    return [float(v) if math.isfinite(v) else None for v in values]
