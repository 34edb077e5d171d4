"""--ensemble and --threshold of minicnn evaluate and predict: several models as one, and the
decision threshold of a two-class model (or ensemble) given on the command line.

    minicnn evaluate run1/model.npz --ensemble run2/model.npz --ensemble run3/model.npz --data D
    minicnn predict run1/model.npz --ensemble run2/model.npz chest.png --threshold 0.7

The models (MODEL and each --ensemble) must take the same input and tell the same classes
apart; their probabilities are averaged (minicnn.training.Ensemble), each model normalising
the images with its own statistics. An ensemble stores no threshold: give --threshold, or
(evaluate) --threshold-from val to choose it on the validation split, as training does.
"""

from ..training.ensemble import Ensemble, EnsembleError
from .common import CommandError, load_model, split_seed

ENSEMBLE_DEFAULT = "used by default: an ensemble stores none"


def add_options(p, choose=False):
    """--ensemble MODEL (repeated) and --threshold T; with choose, --threshold-from val and
    --target-sensitivity (evaluate, which has the data to choose on)."""
    p.add_argument(
        "--ensemble",
        metavar="MODEL",
        action="append",
        default=[],
        help="another model file whose probabilities are averaged with MODEL's (repeat for "
        "more: an ensemble, e.g. of seeds; same input size, channels and classes)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="two classes: call class 1 when P(class 1) >= T (default: the threshold stored "
        "in the model file; an ensemble stores none: 0.5)",
    )
    if choose:
        p.add_argument(
            "--threshold-from",
            choices=["val"],
            help="two classes: choose the threshold on the validation split, the highest "
            "whose sensitivity there is at least --target-sensitivity (as training does)",
        )
        p.add_argument(
            "--target-sensitivity",
            type=float,
            metavar="S",
            default=0.95,
            help="with --threshold-from val: the validation sensitivity to reach (0.95)",
        )


def check_options(args):
    """The ranges of --threshold and --target-sensitivity; one is enough: not both ways."""
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise CommandError(f"--threshold must be in [0, 1], got {args.threshold}")
    if getattr(args, "threshold_from", None) and args.threshold is not None:
        raise CommandError("--threshold fixes the threshold, --threshold-from val chooses it: "
                           "give one")  # fmt: skip
    target = getattr(args, "target_sensitivity", 0.95)
    if not 0 < target <= 1:
        raise CommandError(f"--target-sensitivity must be in (0, 1], got {target}")


def load(args):
    """(models, scorer): the model files read, MODEL first; scorer is the one model, or an
    Ensemble of them all. Members that do not agree: a CommandError naming them."""
    check_options(args)
    paths = [args.model, *args.ensemble]
    models = [load_model(p) for p in paths]
    if len(models) == 1:
        return models, models[0]
    try:
        scorer = Ensemble(models, names=paths)
    except EnsembleError as e:
        raise CommandError(str(e)) from None
    print(f"ensemble of {len(models)} models, their probabilities averaged: {', '.join(paths)}")
    return models, scorer


def seeds_note(models):
    """A line when the members' splits were carved with different seeds (--split-seed, their
    --seed unless given): a split carved from train then holds other members' training images."""
    seeds = [split_seed(getattr(m, "metadata", None) or {}) for m in models]
    if len(models) > 1 and len(set(seeds)) > 1:
        shown = ", ".join("?" if s is None else str(s) for s in seeds)
        print(f"note: the models' splits were carved with --split-seed {shown}: a validation "
              "split carved from train holds patients some member trained on (train them with "
              "one --split-seed)")  # fmt: skip
