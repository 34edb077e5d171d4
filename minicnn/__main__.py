"""Command line: `python -m minicnn predict MODEL IMAGE...` and `python -m minicnn summary MODEL`.

python -m minicnn predict runs/paper-synthetic/model.npz cat.jpg dog.png --top-k 3
python -m minicnn predict runs/paper-synthetic/model.npz photos/ --csv predictions.csv
python -m minicnn summary runs/paper-synthetic/model.npz
"""

import argparse
import contextlib
import csv
import os
import sys

import numpy as np


def _load_model(path):
    from .io import load

    return load(path)


def image_paths(items):
    """Files as given, folders expanded to the image files inside them (recursive, sorted)."""
    from .data.images import is_image_name  # the extensions the training loader reads

    paths = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(item)
                for name in names
                if is_image_name(name)
            )
            if not found:
                print(f"warning: no image files in folder {item}", file=sys.stderr)
            paths += found
        else:
            paths.append(item)
    return paths


def predict(args):
    """Print the top classes of each image; unreadable images are skipped and reported.

    Exit code 0 when every image was read, 1 when some were skipped (or none was read).
    """
    from .data import load_image

    model = _load_model(args.model)
    C, S, _ = model.input_shape
    names = model.class_names
    paths = image_paths(args.images)
    skipped = []
    with open(args.csv, "w", newline="") if args.csv else contextlib.nullcontext() as out:
        writer = csv.writer(out) if args.csv else None
        if writer is not None:
            writer.writerow(["image", "rank", "class", "probability"])
        for start in range(0, len(paths), 256):  # a batch at a time: any number of images
            batch, images = [], []
            for path in paths[start : start + 256]:
                try:
                    images.append(load_image(path, S, C))  # the training preprocessing
                    batch.append(path)
                except FileNotFoundError as e:
                    skipped.append((path, str(e)))
                except (OSError, ValueError, SyntaxError) as e:  # Pillow: cannot decode it
                    skipped.append((path, f"cannot read image {path}: {e}"))
            if not images:
                continue
            probs = model.predict_proba(np.stack(images))  # (N, K), normalised as trained
            k = max(1, min(args.top_k, probs.shape[1]))
            for path, p in zip(batch, probs):
                top = np.argsort(-p, kind="stable")[:k]
                print(path)
                for rank, c in enumerate(top, start=1):
                    label = names[c] if names is not None and c < len(names) else f"class {c}"
                    print(f"  {rank}. {label:<30} {p[c]:7.2%}")
                    if writer is not None:
                        writer.writerow([path, rank, label, f"{p[c]:.6f}"])
    if args.csv:
        print(f"wrote {args.csv}")
    for _, message in skipped:
        print(f"skipped: {message}", file=sys.stderr)
    if skipped:
        read = len(paths) - len(skipped)
        print(f"error: {len(skipped)} of {len(paths)} images could not be read ({read} done)",
              file=sys.stderr)  # fmt: skip
    elif not paths:
        print("error: no images given", file=sys.stderr)
    return 1 if skipped or not paths else 0


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
    meta = getattr(model, "metadata", {}) or {}
    if "epoch" in meta:
        print(f"saved at epoch {meta['epoch']}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="minicnn",
        description="Use a model trained with minicnn (a .npz written by minicnn.save).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = commands.add_parser("predict", help="print the most probable classes of images")
    p.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    p.add_argument(
        "images", metavar="IMAGE", nargs="+", help="image files (any size or mode) or folders"
    )
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (5)")
    p.add_argument("--csv", metavar="FILE", help="also write image, rank, class, probability")
    p.set_defaults(run=predict)
    s = commands.add_parser("summary", help="print the layer table and what the model expects")
    s.add_argument("model", metavar="MODEL")
    s.set_defaults(run=summary)
    from .cli_explain import add_commands  # explain, filters

    add_commands(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .io import ModelFileError

    try:
        return args.run(args)
    except (ModelFileError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
