"""Command line: `python -m minicnn predict MODEL IMAGE...` and `python -m minicnn summary MODEL`.

python -m minicnn predict runs/paper-synthetic/model.npz cat.jpg dog.png --top-k 3
python -m minicnn summary runs/paper-synthetic/model.npz
"""

import argparse
import sys

import numpy as np


def _load_model(path):
    from .io import load

    return load(path)


def predict(args):
    from .data import load_image

    model = _load_model(args.model)
    C, S, _ = model.input_shape
    names = model.class_names
    images = []
    for path in args.images:
        try:
            images.append(load_image(path, S, C))  # the training preprocessing: mode, size
        except FileNotFoundError as e:
            raise SystemExit(f"error: {e}") from None
        except OSError as e:  # Pillow: not an image it can decode
            raise SystemExit(f"error: cannot read image {path}: {e}") from None
    probs = model.predict_proba(np.stack(images))  # (N, K), uint8 in: normalised as trained
    k = max(1, min(args.top_k, probs.shape[1]))
    for path, p in zip(args.images, probs):
        top = np.argsort(-p, kind="stable")[:k]
        print(path)
        for rank, c in enumerate(top, start=1):
            label = names[c] if names is not None and c < len(names) else f"class {c}"
            print(f"  {rank}. {label:<30} {p[c]:7.2%}")
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
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (any size or mode)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (5)")
    p.set_defaults(run=predict)
    s = commands.add_parser("summary", help="print the layer table and what the model expects")
    s.add_argument("model", metavar="MODEL")
    s.set_defaults(run=summary)
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
