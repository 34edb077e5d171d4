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
"""

import math

from .. import io
from ..io import atomic_write
from ..metrics import (
    CALIBRATION_BINS,
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
    intervals = bootstrap(labels, scores, t, resamples=resamples, seed=seed)
    counts = screening_metrics(labels, scores, t)
    at_half = screening_metrics(labels, scores, 0.5)

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
    points = [
        (f"threshold {t:.4g} ({choice['rule'].replace('_', ' ')}): sensitivity "
         f"{counts['sensitivity']:.3f}, specificity {counts['specificity']:.3f}",
         1 - counts["specificity"], counts["sensitivity"]),
        (f"threshold 0.5: sensitivity {at_half['sensitivity']:.3f}, specificity "
         f"{at_half['specificity']:.3f}", 1 - at_half["specificity"], at_half["sensitivity"]),
    ]  # fmt: skip
    title = f"ROC, {data.test_name} split"
    auc = intervals["auc"]["value"]
    atomic_write(run.file("roc.png"), lambda tmp: plot_roc(fpr, tpr, tmp, points, title, auc))
    calibrated = calibration(labels, scores, names, data.test_name, resamples, seed, run)

    section = {
        "positive_class": names[1],
        "threshold": t,
        "threshold_source": "val" if choice["rule"] == "target_sensitivity" else choice["rule"],
        "rule": choice["rule"],
        "target_sensitivity": choice["target_sensitivity"],
        "note": choice["note"],
        "val": choice["val"],
        "split": data.test_name,
        "images": len(labels),
        "counts": {k: counts[k] for k in ("tp", "fn", "fp", "tn")},
        "figures": {k: intervals[k] for k in _meanings(names)},
        "at_0.5": at_half,
        "calibration": calibrated,
        "bootstrap": {
            "resamples": resamples,
            "seed": seed,
            "level": intervals["level"],
            "method": "percentile, over the test images",
        },
    }
    best.threshold = t  # python -m minicnn predict decides with it
    meta = dict(best.metadata, screening={k: section[k] for k in ("threshold", "rule", "note")})
    io.save(best, run.model, metadata=meta)
    return t, section


def calibration(labels, scores, names, split, resamples, seed, run):
    """Print the Brier score and the ECE of P(class 1) with their bootstrap intervals, write
    calibration.png (the reliability diagram) to run; returns results.json's section.

    labels int (N,), scores float (N,) = P(class 1) on `split`; the resamples are those of
    the screening figures (same count and seed). Per bin of P(class 1), the section keeps the
    images, their mean score, the share of class 1 and its interval (null for an empty bin).
    """
    pos = names[1]
    c = bootstrap_calibration(labels, scores, CALIBRATION_BINS, resamples=resamples, seed=seed)
    meanings = {
        "brier": f"mean squared gap between P({pos}) and the truth (0 is perfect)",
        "ece": f"mean gap between P({pos}) and the share of {pos}, bin by bin",
    }
    print(f"  calibration of P({pos}), {c['bins']} bins (same resamples):")
    for key, meaning in meanings.items():
        f = c[key]
        print(f"  {key:<12} {f['value']:6.3f}   {f['low']:.3f} - {f['high']:.3f}   {meaning}")
    curve = reliability_curve(labels, scores, c["bins"])
    bars = (c["frequency"]["low"], c["frequency"]["high"])
    ece, brier = c["ece"]["value"], c["brier"]["value"]
    title = f"reliability, {split} split"
    atomic_write(run.file("calibration.png"),
                 lambda tmp: plot_calibration(curve, tmp, bars, title, ece, brier))  # fmt: skip
    per_bin = {
        "edges": [round(float(e), 6) for e in curve["edges"]],
        "images": curve["count"].tolist(),
        "mean_score": _nulls(curve["mean_score"]),
        "frequency": _nulls(curve["frequency"]),
        "frequency_low": _nulls(c["frequency"]["low"]),
        "frequency_high": _nulls(c["frequency"]["high"]),
    }
    return {"brier": c["brier"], "ece": c["ece"], "bins": c["bins"], "reliability": per_bin}


def _nulls(values):
    """Floats as a list, nan (an empty bin) as None, so that results.json stays plain JSON."""
    return [float(v) if math.isfinite(v) else None for v in values]
