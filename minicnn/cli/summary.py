"""minicnn summary: what a model file holds and what it expects.

    minicnn summary runs/paper-synthetic/model.npz

Printed: the layer table (each layer, its output shape and parameters, the totals, split
into trainable and non-trainable (frozen) parameters), the input (channels and size) and the
output head, the class names (the first 10, each quoted: a name may hold commas), the
normalisation stored with the model (4 significant digits), a two-class model's decision
threshold and where it comes from, and the epoch the file was saved at.
"""

from .common import add_command, load_model, quoted, threshold_of

SHOWN = 10  # class names listed


def add_commands(commands):
    """Register `summary` on the subparsers of `minicnn`."""
    s = add_command(
        commands, "summary", __doc__, help="print the layer table and what the model expects"
    )
    s.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    s.set_defaults(run=summary)


def numbers(values):
    """Per-channel values as written: 4 significant digits, no float32 noise ('0.4802')."""
    return ", ".join(f"{float(v):.4g}" for v in values)


def summary(args):
    model = load_model(args.model)
    print(f"model: {args.model}")
    model.summary()
    C, S, _ = model.input_shape
    names = model.class_names
    print(f"input: {C} channel(s), {S}x{S}; output: {model.output}")
    if names is not None:
        print(f"classes: {quoted(names, SHOWN)}")
    if model.mean is not None:
        print(f"normalisation: mean {numbers(model.mean)}; std {numbers(model.std)} "
              "(0..1 pixel scale)")  # fmt: skip
    if model.threshold is not None and names is not None and len(names) == 2:
        t, source = threshold_of(model)
        print(f"decision: {names[1]} when P({names[1]}) >= {t:.4g} ({source})")
    meta = getattr(model, "metadata", {}) or {}
    if "epoch" in meta:
        print(f"saved at epoch {meta['epoch']}")
    return 0
