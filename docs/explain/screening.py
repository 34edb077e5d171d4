"""A shortcut check for a two-class chest X-ray screening model: where does Grad-CAM put it?

python docs/explain/screening.py MODEL.npz --data pneumoniamnist.npz [--split test]
    [--per-case 6] [--layer K] [--out docs/explain/] [--json FILE]

The split is loaded as `minicnn evaluate` loads it (at the model's input size and channels)
and scored; each image is called positive when P(class 1) >= the threshold stored in the
model file (0.5 when it stores none). That sorts the images into four outcomes: true
positive, false negative, false positive, true negative. Grad-CAM explains the class
decided for each image (at the threshold), from the last layer whose map is at least 8x8
(--layer K or a path such as 7.branch.3 picks another; a smaller map gives one blob).

Written into --out:
- screening-gradcam.png: a row per outcome, its first --per-case images in file order (not
  picked by eye), each with its map over it, P(class 1) and its index in the split;
- screening-mean-maps.png: the mean map of every image of each outcome over their mean
  image, with the regions below outlined.
Printed: a Markdown table, for each region, its share of the image area and the mean share
of the maps' mass inside it, per outcome and over all images. --json FILE writes the figures.

The regions are boxes in fractions of the frame (rows from the top, columns from the image's
left; on a radiograph the image's left is the patient's right). The first five tile the frame:
- border: the band within 10% of the frame of any edge, where a model can read how the image
  was taken, cropped or padded rather than the chest;
- lung, image left and lung, image right: rows 15-80%, columns 10-40% and 60-90%;
- central column: columns 40-60%, rows 10-90%: the mediastinum, spine and heart shadow;
- other: the rest inside the band (above and below the lungs: neck, shoulders, diaphragm).
- top corners (overlaps border and other): the top 15% of the frame's left and right
  quarters, where text markers (side letters, hospital labels) sit on radiographs.
A region attracts attention when its mass share is well above its area share.
"""

import os
import sys

import numpy as np

from minicnn import explain
from minicnn.cli.common import CommandError, Parser, load_model, positive_int, run, threshold_of
from minicnn.cli.evaluate import carving, load_scored, match_classes
from minicnn.data import Split
from minicnn.layers import Conv2D
from minicnn.layers.base import output_shapes
from minicnn.layers.nested import walk
from minicnn.overlays import plot_overlay_grid
from minicnn.plots import shorten
from minicnn.saving import write_json
from minicnn.train import evaluate
from minicnn.training.evaluate import num_classes_of

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_SIDE = 8  # the default layer: the last map at least this many cells on each side
EDGE = 0.10  # the border band: this fraction of the frame from each edge
BOXES = {  # (top, bottom, left, right) as fractions of the frame
    "lung, image left": [(0.15, 0.80, 0.10, 0.40)],
    "lung, image right": [(0.15, 0.80, 0.60, 0.90)],
    "central column": [(EDGE, 1 - EDGE, 0.40, 0.60)],
    "top corners": [(0.0, 0.15, 0.0, 0.25), (0.0, 0.15, 0.75, 1.0)],
}
TILING = ["lung, image left", "lung, image right", "central column", "border", "other"]
OUTCOMES = [  # (name, short name, true class, decided class)
    ("true positive", "TP", 1, 1),
    ("false negative", "FN", 1, 0),
    ("false positive", "FP", 0, 1),
    ("true negative", "TN", 0, 0),
]


def box_mask(H, W, top, bottom, left, right):
    """bool (H, W): the pixels whose centre lies in [top, bottom) x [left, right) of the frame."""
    rows = (np.arange(H) + 0.5) / H
    cols = (np.arange(W) + 0.5) / W
    inside_rows = (rows >= top) & (rows < bottom)
    inside_cols = (cols >= left) & (cols < right)
    return inside_rows[:, None] & inside_cols[None, :]


def region_masks(H, W):
    """{region: bool (H, W)}: the five that tile the frame (TILING), then the top corners."""
    boxes = {name: np.any([box_mask(H, W, *b) for b in bs], axis=0) for name, bs in BOXES.items()}
    inner = box_mask(H, W, EDGE, 1 - EDGE, EDGE, 1 - EDGE)
    masks = {name: boxes[name] for name in TILING[:3]}
    masks["border"] = ~inner
    masks["other"] = inner & ~np.any(list(masks.values()), axis=0)
    masks["top corners"] = boxes["top corners"]
    return masks


def default_layer(model):
    """The index of the last top-level layer, from the first convolution's on, whose output
    map is at least MIN_SIDE x MIN_SIDE; else the last with a map (grad_cam's default)."""
    shapes = output_shapes(model.layers, model.input_shape)
    convs = [p for p, layer in walk(model.layers) if isinstance(layer, Conv2D)]
    first = int(convs[0].partition(".")[0]) if convs else 0
    maps = [j for j, s in enumerate(shapes) if len(s) == 3 and j >= first]
    large = [j for j in maps if min(shapes[j][1:]) >= MIN_SIDE]
    return (large or maps or [None])[-1]


def layer_name(model, images, layer):
    """'layer 20 ReLU(), 8x8 map': the layer and the size of its output map."""
    path, found = explain.locate(model, layer)
    _, _, h, w = explain.feature_maps(model, images[:1], path).shape
    return f"layer {path} {found!r}, {h}x{w} map"


def mean_shares(shares):
    """(R,) mean over images of (n, R) shares, leaving out the all-zero maps (nan rows)."""
    kept = shares[~np.isnan(shares).any(axis=1)]
    return kept.mean(axis=0) if len(kept) else np.full(shares.shape[1], np.nan)


def finite(value):
    """value, or None for nan (JSON has no nan)."""
    return None if isinstance(value, float) and np.isnan(value) else value


def table(names, area, columns, empty):
    """A Markdown table: a row per region, its area share, then one column per
    (heading, mass shares (R,)); a last row with the empty maps of each column."""
    lines = ["| region | area | " + " | ".join(h for h, _ in columns) + " |"]
    lines.append("|" + " --- |" * (2 + len(columns)))
    for r, name in enumerate(names):
        cells = ["-" if np.isnan(s[r]) else f"{s[r]:.0%}" for _, s in columns]
        lines.append(f"| {name} | {area[r]:.0%} | " + " | ".join(cells) + " |")
    lines.append("| empty maps, left out | | " + " | ".join(map(str, empty)) + " |")
    return "\n".join(lines)


def parse(argv):
    parser = Parser(prog="screening.py", description=__doc__.splitlines()[0])
    parser.add_argument("model", metavar="MODEL", help="a two-class model file")
    parser.add_argument("--data", required=True, help="folder, .zip or MedMNIST .npz")
    parser.add_argument("--split", choices=["train", "val", "test"], help="(test, else val)")
    parser.add_argument("--per-case", type=positive_int, default=6, metavar="N",
                        help="images shown per outcome (6)")  # fmt: skip
    parser.add_argument("--layer", type=explain.layer_arg, metavar="K",
                        help=f"Grad-CAM layer, index or path (the last map >= {MIN_SIDE}x"
                        f"{MIN_SIDE})")  # fmt: skip
    parser.add_argument("--out", default=HERE, metavar="DIR", help="folder for the PNGs")
    parser.add_argument("--json", metavar="FILE", help="write the figures here")
    parser.add_argument("--seed", type=int, help="seed of carved splits (the training's)")
    parser.add_argument("--group-by", metavar="RULE", help="rule of carved splits (the training's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def scored(args):
    """Load the model and the split as `minicnn evaluate` does and score it: (model, split
    name, images uint8 (N, C, S, S), labels (N,), P(class 1) (N,), threshold, its source)."""
    model = load_model(args.model)
    if num_classes_of(model) != 2:
        raise CommandError(f"{args.model} has {num_classes_of(model)} classes: the shortcut "
                           "check is for two-class screening models")  # fmt: skip
    C, S, _ = model.input_shape
    seed, group_by = carving(args, getattr(model, "metadata", None) or {})
    name, split, ds = load_scored(args, S, C, seed, group_by)
    index = match_classes(model, ds.class_names, args.data)
    if index is not None:  # the data's labels as the model's class indices
        split = Split(split.images, index[split.labels])
    p1 = evaluate(model, split)["probs"][:, 1]
    return (model, name, split.images, split.labels, p1, *threshold_of(model))


def main(argv=None):
    """Score the split, print the table, draw the two pictures; the exit code (0)."""
    args = parse(argv)
    model, split, x, y, p1, t, source = scored(args)
    names = model.class_names or ["class 0", "class 1"]
    decided = (p1 >= t).astype(np.int64)
    print(f"decision: {names[1]} when P({names[1]}) >= {t:.4g} ({source})")
    layer = default_layer(model) if args.layer is None else args.layer
    try:
        cams = explain.grad_cam(model, x, target=decided, layer=layer)  # (N, S, S)
        described = layer_name(model, x, layer)
    except ValueError as e:  # a layer the model lacks, or one without a map
        raise CommandError(f"--layer {args.layer}: {e}") from None
    masks = region_masks(*cams.shape[1:])
    regions, area = list(masks), np.array([m.mean() for m in masks.values()])
    shares = explain.region_shares(cams, np.stack(list(masks.values())))  # (N, R)
    blank = np.isnan(shares).any(axis=1)  # (N,): maps zero everywhere

    outcomes, columns, rows, labels, means = {}, [], [], [], []
    positive = shorten(names[1], 12)
    for name, short, truth, call in OUTCOMES:
        members = np.flatnonzero((y == truth) & (decided == call))  # in file order
        shown, empty = members[: args.per_case], int(blank[members].sum())
        share = mean_shares(shares[members])  # (R,)
        outcomes[name] = {"count": len(members), "shown": shown.tolist(), "empty_maps": empty,
                          "shares": dict(zip(regions, map(finite, share.tolist())))}  # fmt: skip
        columns.append((f"{short} ({len(members)})", share))
        rows.append([(x[i], cams[i], f"{split} #{i}{' (empty)' if blank[i] else ''}\n"
                      f"P({positive}) {p1[i]:.4f}") for i in shown])  # fmt: skip
        labels.append(f"{name}\n{len(members)} images\n{empty} maps empty")
        if len(members):
            mean_map = cams[members].mean(axis=0)
            mean_image = np.rint(x[members].mean(axis=0)).astype(np.uint8)
            caption = f"{name}\n{len(members)} images, {empty} maps empty"
            means.append((mean_image, mean_map / max(mean_map.max(), 1e-12), caption))
    columns.append((f"all ({len(x)})", mean_shares(shares)))

    counts = ", ".join(f"{o['count']} {name}" for name, o in outcomes.items())
    print(f"{split} split, {len(x)} images: {counts}")
    print(f"Grad-CAM of the decided class at {described}")
    print("share of the map's mass in each region (mean over images), and of the image area:\n")
    empty = [o["empty_maps"] for o in outcomes.values()] + [int(blank.sum())]
    print(table(regions, area, columns, empty) + "\n")
    if blank.any():
        print(
            f"warning: {blank.sum()} of {len(x)} maps are zero everywhere at this layer (no "
            "positive evidence), left out of the shares; another --layer may show them"
        )

    os.makedirs(args.out, exist_ok=True)
    heading = f"Grad-CAM at {described}: {os.path.basename(args.model)}, {split} split"
    grid = plot_overlay_grid(
        rows, os.path.join(args.out, "screening-gradcam.png"), labels,
        f"{heading}\nthe first {args.per_case} of each outcome in file order; the maps explain "
        f"the class decided at P({names[1]}) >= {t:.4g};\n(empty): the map is zero everywhere, "
        "no positive evidence at this layer",
    )  # fmt: skip
    boxes = [b for name in TILING[:3] for b in BOXES[name]] + [(EDGE, 1 - EDGE, EDGE, 1 - EDGE)]
    mean = plot_overlay_grid(
        [means], os.path.join(args.out, "screening-mean-maps.png"), None,
        f"{heading}\nmean map per outcome over its mean image, each scaled to its maximum;"
        f"\nboxes: the lungs, the central column, the {EDGE:.0%} border band",
        boxes=boxes, cell=192,
    )  # fmt: skip
    print(f"wrote {grid}\nwrote {mean}")
    if args.json:
        write_json(args.json, {
            "model": args.model, "data": args.data, "split": split, "images": len(x),
            "threshold": t, "threshold_source": source, "layer": described,
            "regions": {r: {"area": a, "boxes": BOXES.get(r)} for r, a in zip(regions, area)},
            "outcomes": outcomes, "all": dict(zip(regions, map(finite, columns[-1][1].tolist()))),
        })  # fmt: skip
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
