"""minicnn summary: what a model file holds and what it expects.

    minicnn summary runs/paper-synthetic/model.npz

Printed: the layer table (each layer, its output shape and parameters, the totals), the
input (channels and size) and the output head, the class names (the first 10), the
normalisation stored with the model, a two-class model's decision threshold, and the epoch
the file was saved at.
"""

import numpy as np

from .common import add_command, load_model


def add_commands(commands):
    """Register `summary` on the subparsers of `minicnn`."""
    s = add_command(
        commands, "summary", __doc__, help="print the layer table and what the model expects"
    )
    s.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    s.set_defaults(run=summary)


def summary(args):
    model = load_model(args.model)
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
