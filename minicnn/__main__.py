"""Command line: `python -m minicnn COMMAND ...` (also installed as `minicnn`).

python -m minicnn predict runs/paper-synthetic/model.npz cat.jpg dog.png --top-k 3
python -m minicnn predict runs/paper-synthetic/model.npz photos/ --csv predictions.csv
python -m minicnn summary runs/paper-synthetic/model.npz
python -m minicnn evaluate runs/paper-tiny/model.npz --data tiny-imagenet-200.zip --tta flip
python -m minicnn explain MODEL.npz photo.jpg          (minicnn/cli_explain.py)

Each module listed in `registrars` adds its subcommands with add_commands(subparsers), each
setting `run`, a function of the parsed arguments that returns the exit code. An expected
error (a model file that cannot be used, a file that cannot be read or written, ...) is one
line `error: ...` and exit code 1 (minicnn/cli_common.py); --debug shows its traceback.
"""

import argparse
import os
import sys
from itertools import zip_longest

import numpy as np

from .cli_common import CommandError, add_debug_option, report_skipped, run


def _load_model(path):
    from .io import load

    return load(path)


def image_paths(items):
    """Files as given, folders expanded to the image files inside them (recursive, sorted).

    Folders are walked as the training loader walks them (links followed, never in a loop);
    what the walk leaves out is said on stderr.
    """
    from .data.images import is_image_name  # the extensions the training loader reads
    from .data.sources import printable, walk

    paths = []
    for item in items:
        if not os.path.isdir(item):
            paths.append(item)
            continue
        left_out = []
        found = [
            os.path.join(item, *rel_dir.split("/")[:-1], name)
            for rel_dir, _, names in walk(item, left_out)
            for name in names
            if is_image_name(name)
        ]
        for why in left_out:
            print(f"warning: {why}", file=sys.stderr)
        if not found:
            print(f"warning: no image files in folder {printable(item)}", file=sys.stderr)
        paths += sorted(found)
    return paths


def predict(args):
    """Print the top classes of each image; unreadable images are skipped and reported.

    A two-class model prints P(class 1) and the decision against its threshold (the one
    chosen on validation and stored in the file; 0.5 without one) instead, and its --csv
    has the columns image, decision, P(class 1), threshold.
    Exit code 0 when every image was read, 1 when some were skipped (or none was read).
    """
    from .data.images import read_images
    from .data.sources import printable
    from .heads import num_classes
    from .io import write_csv

    model = _load_model(args.model)
    C, S, _ = model.input_shape
    names = model.class_names
    paths = image_paths(args.images)
    rows, skipped = [["image", "rank", "class", "probability"]], []
    two = num_classes(model.output_shape(model.input_shape)[-1], model.output) == 2
    if two:
        names = names or ["class 0", "class 1"]
        t = 0.5 if model.threshold is None else model.threshold
        chosen = "chosen on validation" if model.threshold is not None else "the default"
        rows = [["image", "decision", f"P({names[1]})", "threshold"]]
    for start in range(0, len(paths), 256):  # a batch at a time: any number of images
        batch, images, missed = read_images(paths[start : start + 256], S, C)  # as in training
        skipped += missed
        if not images:
            continue
        probs = model.predict_proba(np.stack(images), tta=args.tta)  # (N, K), as trained
        k = max(1, min(args.top_k, probs.shape[1]))
        for path, p in zip(batch, probs):
            print(printable(path))
            if two:  # the decision: class 1 when P(class 1) >= t
                decided = names[int(p[1] >= t)]
                print(f"  P({names[1]}) {p[1]:7.2%}  ->  {decided}  (threshold {t:.4g}, {chosen})")
                rows.append([printable(path), decided, f"{p[1]:.6f}", f"{t:.6g}"])
                continue
            for rank, c in enumerate(np.argsort(-p, kind="stable")[:k], start=1):
                label = names[c] if names is not None and c < len(names) else f"class {c}"
                print(f"  {rank}. {label:<30} {p[c]:7.2%}")
                rows.append([printable(path), rank, label, f"{p[c]:.6f}"])
    if args.csv:
        write_csv(args.csv, rows)  # through a temporary file: never half a table
        print(f"wrote {args.csv}")
    return report_skipped(skipped, len(paths))


def evaluate(args):
    """Accuracy (top-5 too for over 5 classes) of a model on one split of a labelled data set.

    The data is loaded as training loads it (minicnn.data.load at the model's size and
    channels; a split the source lacks is carved with --seed, as training carved it), and
    its classes must be the model's, in the same order. A two-class model is also judged at
    its threshold (sensitivity, specificity) and by its ROC AUC. --tta flip adds the same
    figures for the mean over each image and its mirror.
    """
    from .data import load
    from .data.sources import printable
    from .metrics import binary_metrics
    from .train import evaluate as evaluate_split

    model = _load_model(args.model)
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


def summary(args):
    model = _load_model(args.model)
    print(f"model: {args.model}")
    model.summary()
    C, S, _ = model.input_shape
    names = model.class_names
    print(f"input: {C} channel(s), {S}x{S}; output: {model.output}")
    if names is not None:
        shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
        print(f"classes: {shown}")
    if model.mean is not None:
        print(f"normalisation: mean {np.round(model.mean, 4).tolist()}, "
              f"std {np.round(model.std, 4).tolist()} (0..1 pixel scale)")  # fmt: skip
    if model.threshold is not None and names is not None and len(names) == 2:
        print(f"decision: {names[1]} when P({names[1]}) >= {model.threshold:.4g} "
              "(chosen on validation)")  # fmt: skip
    meta = getattr(model, "metadata", {}) or {}
    if "epoch" in meta:
        print(f"saved at epoch {meta['epoch']}")
    return 0


def add_commands(commands):
    """Register `predict`, `evaluate` and `summary` on the subparsers of `python -m minicnn`."""
    p = commands.add_parser("predict", help="print the most probable classes of images")
    p.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    p.add_argument(
        "images", metavar="IMAGE", nargs="+", help="image files (any size or mode) or folders"
    )
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (5)")
    p.add_argument("--csv", metavar="FILE", help="also write image, rank, class, probability")
    add_tta_option(p)
    p.set_defaults(run=predict)
    e = commands.add_parser("evaluate", help="accuracy of a model on a labelled data set")
    e.add_argument("model", metavar="MODEL")
    e.add_argument("--data", required=True, help="folder, .zip or MedMNIST .npz, as in training")
    e.add_argument("--split", choices=["train", "val", "test"], help="(default: test, else val)")
    e.add_argument("--seed", type=int, default=0, help="seed of carved splits, as in training")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_tta_option(e)
    e.set_defaults(run=evaluate)
    s = commands.add_parser("summary", help="print the layer table and what the model expects")
    s.add_argument("model", metavar="MODEL")
    s.set_defaults(run=summary)


def add_tta_option(parser):
    from .data.augment import TTA

    parser.add_argument(
        "--tta", choices=TTA, help="flip: average each image with its mirror (photos, not X-rays)"
    )


def registrars():
    """Each module's add_commands(subparsers), in --help order: one line per module."""
    from . import cli_explain

    return [
        add_commands,  # predict, evaluate, summary
        cli_explain.add_commands,  # explain, filters
    ]


def parser():
    top = argparse.ArgumentParser(
        prog="minicnn",
        description="Use a model trained with minicnn (a .npz written by minicnn.save).",
    )
    add_debug_option(top)
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND")
    for register in registrars():
        register(subparsers)
    return top


def _main(argv):
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args([a for a in argv if a != "--debug"])  # --debug: anywhere, see run()
    if args.command is None:
        p.print_help()
        return 2
    return args.run(args)


def main(argv=None):
    """Run `python -m minicnn ARGS`; returns the exit code (expected errors: one line, 1)."""
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
