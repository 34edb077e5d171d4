"""minicnn predict: the most probable classes of images, as the model was trained to see them.

    minicnn predict runs/paper-synthetic/model.npz cat.jpg dog.png --top-k 3
    minicnn predict runs/paper-synthetic/model.npz photos/ --csv predictions.csv
    minicnn predict runs/xray-pneumoniamnist/model.npz chest.png     # two classes
    minicnn predict MODEL photos/ --tta flip      # each photo averaged with its mirror
    minicnn predict MODEL --ensemble MODEL2 --ensemble MODEL3 chest.png --threshold 0.7

Each image (any size, mode or format Pillow reads; a folder means every image file inside
it, recursively) is preprocessed as in training: resized to the model's input, gray or RGB
as the model takes, normalised with the statistics stored in the model file. Printed per
image: its path, then its --top-k classes with their probabilities.

A two-class model prints P(class 1) and the decision instead: class 1 when P(class 1) is at
least the threshold stored in the model file (chosen on validation by `minicnn train
--screening`; 0.5 without one), and says which threshold decided, and what 0.5 would say
when it differs:

    P(pneumonia) 89.79% -> normal (below the threshold 0.9795 chosen on validation; 0.5
    would say pneumonia)

--threshold T decides at T instead. --ensemble MODEL2 (repeated) predicts with MODEL and
those models as one, the mean of their probabilities (with --tta, over every view too); an
ensemble stores no threshold: --threshold T, else 0.5 (minicnn evaluate --threshold-from val
chooses one on a validation split).

Its --csv has the columns image, decision, P(class 1), threshold, threshold from, decision
at 0.5; otherwise image, rank, class, probability.

Exit code 0 when every image was read; 1 when some were skipped (each is named on stderr,
and the others are still predicted) or none was given.
"""

import numpy as np

from ..data.images import read_images
from ..data.sources import printable
from ..heads import num_classes
from ..io import write_csv
from . import ensemble
from .common import (
    add_command,
    add_tta_option,
    image_paths,
    positive_int,
    report_skipped,
    threshold_of,
)

BATCH = 256  # images read and predicted at a time: any number of images fits in memory


def add_commands(commands):
    """Register `predict` on the subparsers of `minicnn`."""
    p = add_command(commands, "predict", __doc__, help="print the most probable classes of images")
    p.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    p.add_argument(
        "images", metavar="IMAGE", nargs="+", help="image files (any size or mode) or folders"
    )
    p.add_argument("--top-k", type=positive_int, default=5, help="classes to show per image (5)")
    p.add_argument("--csv", metavar="FILE", help="also write image, rank, class, probability")
    add_tta_option(p)
    ensemble.add_options(p)  # --ensemble MODEL2 ..., --threshold T
    p.set_defaults(run=predict)


def predict(args):
    """Print the top classes (two classes: the decision) of each image; the exit code."""
    models, scorer = ensemble.load(args)  # one model, or --ensemble: their mean
    model = models[0]
    C, S, _ = model.input_shape
    names = model.class_names
    paths = image_paths(args.images)
    rows, skipped = [["image", "rank", "class", "probability"]], []
    two = num_classes(model.output_shape(model.input_shape)[-1], model.output) == 2
    if two:
        names = names or ["class 0", "class 1"]
        if args.threshold is not None:
            t, source = args.threshold, "given with --threshold"
        elif len(models) > 1:
            t, source = 0.5, ensemble.ENSEMBLE_DEFAULT
        else:
            t, source = threshold_of(model, detail=False)  # short
        rows = [["image", "decision", f"P({names[1]})", "threshold", "threshold from",
                 "decision at 0.5"]]  # fmt: skip
    for start in range(0, len(paths), BATCH):
        batch, images, missed = read_images(paths[start : start + BATCH], S, C)  # as in training
        skipped += missed
        if not images:
            continue
        probs = scorer.predict_proba(np.stack(images), tta=args.tta)  # (N, K), as trained
        k = min(args.top_k, probs.shape[1])
        for path, p in zip(batch, probs):
            print(printable(path))
            if two:  # the decision: class 1 when P(class 1) >= t
                decided, at_half = names[int(p[1] >= t)], names[int(p[1] >= 0.5)]
                print(f"  P({names[1]}) {p[1]:.2%} -> {decided} "
                      f"({_why(p[1], t, source, decided, at_half)})")  # fmt: skip
                rows.append([printable(path), decided, f"{p[1]:.6f}", f"{t:.6g}", source, at_half])
                continue
            for rank, c in enumerate(np.argsort(-p, kind="stable")[:k], start=1):
                label = names[c] if names is not None and c < len(names) else f"class {c}"
                print(f"  {rank}. {label:<30} {p[c]:7.2%}")
                rows.append([printable(path), rank, label, f"{p[c]:.6f}"])
    if args.csv:
        write_csv(args.csv, rows)  # through a temporary file: never half a table
        print(f"wrote {args.csv}")
    return report_skipped(skipped, len(paths))


def _why(p, t, source, decided, at_half):
    """Which threshold decided, and what 0.5 would have said when it differs."""
    side = "at or above" if p >= t else "below"
    other = f"; 0.5 would say {at_half}" if at_half != decided else ""
    return f"{side} the threshold {t:.4g} {source}{other}"
