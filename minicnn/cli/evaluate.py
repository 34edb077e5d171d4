"""minicnn evaluate: the accuracy of a model on one split of a labelled data set.

    minicnn evaluate runs/paper-tiny/model.npz --data tiny-imagenet-200.zip
    minicnn evaluate runs/paper-tiny/model.npz --data tiny-imagenet-200.zip --split val --tta flip
    minicnn evaluate runs/xray-pneumoniamnist/model.npz --data pneumoniamnist.npz

The data is loaded as training loads it (minicnn.data.load at the model's input size and
channels; a split the source lacks is carved with --seed, as training carved it), and its
classes must be the model's, in the same order. --split picks the split (default: test when
the data has one, else val).

Printed: accuracy, and top-5 accuracy for over 5 classes. A two-class model is judged at the
threshold stored in its file (sensitivity, specificity) and by its ROC AUC. --tta flip adds
the same figures for the mean over each image and its mirror.
"""

from itertools import zip_longest

from ..data import load
from ..data.sources import printable
from ..metrics import binary_metrics
from ..train import evaluate as evaluate_split
from .common import CommandError, add_command, add_tta_option, load_model


def add_commands(commands):
    """Register `evaluate` on the subparsers of `minicnn`."""
    e = add_command(
        commands, "evaluate", __doc__, help="accuracy of a model on a labelled data set"
    )
    e.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    e.add_argument("--data", required=True, help="folder, .zip or MedMNIST .npz, as in training")
    e.add_argument("--split", choices=["train", "val", "test"], help="(default: test, else val)")
    e.add_argument("--seed", type=int, default=0, help="seed of carved splits, as in training")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_tta_option(e)
    e.set_defaults(run=evaluate)


def evaluate(args):
    """Print the model's figures on the split; 0 (a data set that does not fit: an error)."""
    model = load_model(args.model)
    C, S, _ = model.input_shape
    ds = load(args.data, image_size=S, channels=C, seed=args.seed, progress=not args.no_progress)
    name = args.split or ("test" if ds.test is not None and len(ds.test) else "val")
    split = getattr(ds, name)
    if split is None or not len(split):
        raise CommandError(f"{printable(args.data)} has no {name} split")
    if model.class_names is not None and list(model.class_names) != ds.class_names:
        pairs = enumerate(zip_longest(model.class_names, ds.class_names))
        differ = next(i for i, (a, b) in pairs if a != b)
        raise CommandError(
            f"the classes of {printable(args.data)} ({ds.num_classes}) are not the model's "
            f"({len(model.class_names)}): they differ at class {differ}"
        )
    epoch = (getattr(model, "metadata", {}) or {}).get("epoch")
    print(f"model: {args.model}" + (f" (saved at epoch {epoch})" if epoch else ""))
    print(f"data: {printable(args.data)}, {name} split, {len(split)} images, "
          f"{ds.num_classes} classes")  # fmt: skip
    t = 0.5 if model.threshold is None else model.threshold
    for tta in [None] + ([args.tta] if args.tta else []):
        result = evaluate_split(model, split, tta=tta)
        if ds.num_classes == 2:
            m = binary_metrics(result["labels"], result["probs"][:, 1], t)
            line = (f"sensitivity {m['sensitivity']:.3f}   specificity {m['specificity']:.3f}   "
                    f"(threshold {t:.4g})   ROC AUC {m['auc']:.3f}")  # fmt: skip
        else:
            line = f"accuracy {result['accuracy']:.2%}"
            if "top5" in result:
                line += f"   top-5 {result['top5']:.2%}"
        print(f"  {'one view' if tta is None else '--tta ' + tta + ':':<12} {line}")
    return 0
