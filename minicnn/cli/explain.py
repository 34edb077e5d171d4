"""minicnn explain and minicnn filters: pictures of what a model uses.

    minicnn explain examples/models/paper-pneumoniamnist.npz chest.png
    minicnn explain MODEL.npz photos/ --method occlusion --out explained/   # + index.html
    minicnn explain MODEL.npz photo.jpg --target 3 --method saliency
    minicnn filters MODEL.npz --layer 0 --out filters.png

explain writes one PNG per image into --out: the image as the model sees it, the heat map
over it, and the top classes. --method gradcam (the default) weighs the feature maps of the
last layer with a spatial output (--layer K picks another) by the spatial mean of the class
score's gradient; saliency is the largest gradient of the score over each pixel's channels;
occlusion is the drop in the class's probability when 8x8 patches over a pixel are hidden.
--target names the class explained (an index, or a class name or one of its synonyms in any
case, with a "did you mean" for a near miss; default: the predicted one). A long class name
is shortened in the caption at a word, with an ellipsis.
A folder also gets index.html, every picture in a grid. Exit code 0 when every image was
read, 1 when some were skipped or none was given.

filters draws the filters of one Conv2D layer as a grid (mid gray 0, white positive, black
negative) into --out (default filters-layerK.png).
"""

import html
import os
import sys
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .. import explain
from ..data.images import read_images
from ..data.sources import printable
from ..io import atomic_write
from ..plots import plot_explanation, plot_filters, shorten
from .common import add_command, class_index, image_paths, load_model, report_skipped

METHODS = {  # --method: (title, function)
    "gradcam": ("Grad-CAM", explain.grad_cam),
    "saliency": ("saliency", explain.saliency),
    "occlusion": ("occlusion", explain.occlusion),
}
TOP = 3  # classes listed in each picture
CAPTION = 28  # characters of the class name under the heat map (cut at a word, with "…")
BATCH = 64  # images read and explained at a time


def add_commands(commands):
    """Register `explain` and `filters` on the subparsers of `minicnn`."""
    e = add_command(
        commands, "explain", __doc__, help="draw where a model looks: one PNG per image"
    )
    e.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    e.add_argument("image", metavar="IMAGE_OR_FOLDER", help="an image file or a folder of them")
    e.add_argument("--method", choices=list(METHODS), default="gradcam", help="(gradcam)")
    e.add_argument("--target", metavar="CLASS", help="class index or name (the predicted one)")
    e.add_argument(
        "--layer",
        type=explain.layer_arg,
        metavar="K",
        help="Grad-CAM: layer index or path, e.g. 5.branch.3 (last map)",
    )
    e.add_argument("--out", metavar="DIR", default="explain", help="output folder (explain)")
    e.set_defaults(run=run_explain)
    f = add_command(commands, "filters", __doc__, help="draw the filters of a convolution layer")
    f.add_argument("model", metavar="MODEL", help="model file, e.g. runs/paper-x/model.npz")
    f.add_argument(
        "--layer", type=explain.layer_arg, default=0, metavar="K", help="layer index or path (0)"
    )
    f.add_argument("--out", metavar="FILE", help="PNG to write (filters-layerK.png)")
    f.set_defaults(run=run_filters)


def _label(model, c):
    names = model.class_names
    return names[c] if names is not None and c < len(names) else f"class {c}"


def _target(model, text):
    """--target: an index, or a class name or one of its comma-separated synonyms (any case)."""
    return None if text is None else class_index(text, model.class_names)


def _png_name(path, root, method, used):
    """A file name for path's picture, unique in the output folder."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    stem = os.path.splitext(rel)[0].replace(os.sep, "_")
    name, k = f"{stem}.{method}.png", 1
    while name in used:
        k += 1
        name = f"{stem}-{k}.{method}.png"
    used.add(name)
    return name


def run_explain(args):
    """Write a PNG per image (image, heatmap overlay, top classes); a folder also gets index.html.

    Exit code 0 when every image was read, 1 when some were skipped or none was given.
    """
    model = load_model(args.model)
    C, S, _ = model.input_shape
    title, method = METHODS[args.method]
    options = {"layer": args.layer} if args.method == "gradcam" else {}
    folder = args.image if os.path.isdir(args.image) else None
    target = _target(model, args.target)  # a class the model lacks: said before any work
    paths = image_paths([args.image])
    os.makedirs(args.out, exist_ok=True)
    used, entries, skipped = set(), [], []
    try:
        for start in range(0, len(paths), BATCH):
            batch, images, missed = read_images(paths[start : start + BATCH], S, C)
            skipped += missed
            if not images:
                continue
            images = np.stack(images)  # (n, C, S, S) uint8
            maps = method(model, images, target, **options)  # (n, S, S)
            probs = model.predict_proba(images)  # (n, K)
            for path, image, heat, p in zip(batch, images, maps, probs):
                t = int(p.argmax()) if target is None else target
                caption = f"{shorten(_label(model, t), CAPTION)}  {p[t]:.1%}"
                heading = f"{title}: {printable(os.path.basename(path))}"
                if args.method == "occlusion":  # probability drops: the positive part, scaled
                    peak = float(heat.max())
                    heading += f" (largest drop {peak:.3f})"
                    heat = np.clip(heat / peak, 0, 1) if peak > 0 else np.zeros_like(heat)
                top = [(_label(model, c), p[c]) for c in np.argsort(-p, kind="stable")[:TOP]]
                name = _png_name(path, folder, args.method, used)
                plot_explanation(image, heat, os.path.join(args.out, name), caption, top, heading)
                shown = printable(os.path.relpath(path, folder) if folder else path)
                entries.append((name, shown, caption))
                print(f"{printable(path)} -> {printable(os.path.join(args.out, name))}")
    except ValueError as e:  # a target or layer the model does not have (ShapeError too)
        print(f"error: {e}", file=sys.stderr)
        return 1
    if folder is not None:
        heading = printable(f"{title}, {args.model}, {folder}")
        print(f"wrote {printable(_write_index(args.out, entries, heading))}")
    return report_skipped(skipped, len(paths))


def _write_index(out, entries, heading):
    """index.html in out: every picture in a grid, each with its image path and caption."""
    figures = "\n".join(
        f'<figure><img src="{quote(name)}" alt="{html.escape(rel)}">'
        f"<figcaption>{html.escape(rel)}<br>{html.escape(caption)}</figcaption></figure>"
        for name, rel, caption in entries
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }} figcaption {{ font-size: small; }}
</style></head>
<body><h1>{html.escape(heading)}</h1>
<div class="grid">
{figures}
</div></body></html>
"""
    path = os.path.join(out, "index.html")
    atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path


def run_filters(args):
    """Write a grid of one Conv2D layer's filters (mid gray 0, white positive, black negative)."""
    model = load_model(args.model)
    try:
        weights = explain.filters(model, args.layer)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    F, C, k, _ = weights.shape
    i, conv = explain.locate(model, args.layer)  # its path, e.g. "0" or "5.branch.0"
    out = args.out or f"filters-layer{i}.png"
    plot_filters(weights, out, title=f"layer #{i} {conv!r}: {F} filters {k}x{k}")
    print(f"wrote {out}")
    return 0
