"""Charts as PNG files drawn with Pillow's ImageDraw: learning curves, a confusion matrix,
explanations and filter grids, and the screening charts (ROC curve, reliability diagram).

No plotting library: a chart here is a few lines, rectangles and labels on a white canvas.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .io import atomic_write

TRAIN_COLOUR = (31, 119, 180)  # blue
VAL_COLOUR = (255, 127, 14)  # orange
GRID = (225, 225, 225)
INK = (30, 30, 30)


def _font(size):
    try:
        return ImageFont.load_default(size=size)  # scalable, Pillow >= 10.1
    except TypeError:
        return ImageFont.load_default()


def _text(draw, xy, text, font, anchor="la", fill=INK):
    try:
        draw.text(xy, text, font=font, fill=fill, anchor=anchor)
    except ValueError:  # bitmap fonts of old Pillow have no anchors
        draw.text(xy, text, font=font, fill=fill)
    except UnicodeEncodeError:  # ... nor any character beyond Latin-1
        plain = text.replace(ELLIPSIS, "...").encode("latin-1", "replace").decode("latin-1")
        draw.text(xy, plain, font=font, fill=fill)


ELLIPSIS = "\u2026"  # one character: "..." would take three of a caption's few


def shorten(text, width):
    """text cut to at most `width` characters at a word boundary, with an ellipsis.

    "tailed frog, bell toad, ribbed toad" at 24 -> "tailed frog, bell toad…": the cut falls
    on the last space that leaves room for the ellipsis, and a comma or other separator
    before it goes too. A single word longer than width is cut inside it (nothing else fits).
    """
    text = str(text)
    if len(text) <= width:
        return text
    head = text[: width - 1]  # room for the ellipsis
    inside = head[-1:].isalnum() and text[width - 1].isalnum()  # the cut falls in a word
    if inside and " " in head:  # back to the space before it
        head = head[: head.rindex(" ")]
    return head.rstrip(" ,;:-/") + ELLIPSIS


def nice_ticks(lo, hi, n=5):
    """About n round tick values covering [lo, hi] (1, 2, 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 10))
    return ticks


def _panel(draw, box, title, ylabel, series, fonts, percent=False, from_zero=False):
    """One line chart in box (x0, y0, x1, y1): series is [(label, colour, xs, ys), ...].

    percent: the axis runs from 0 to at least 10%, labelled in %; from_zero: it starts at 0.
    """
    x0, y0, x1, y1 = box
    small, normal = fonts
    left, right, top, bottom = x0 + 70, x1 - 15, y0 + 55, y1 - 50
    _text(draw, ((x0 + x1) // 2, y0 + 8), title, normal, "ma")
    values = [v for _, _, _, ys in series for v in ys if v is not None and math.isfinite(v)]
    xs_all = [x for _, _, xs, _ in series for x in xs]
    if not values or not xs_all:
        _text(draw, ((left + right) // 2, (top + bottom) // 2), "no data", normal, "mm")
        return
    lo, hi = min(values), max(values)
    if percent:
        lo, hi = 0.0, max(hi, 0.1)
    elif from_zero:
        lo = 0.0
    yt = nice_ticks(lo, hi if hi > lo else lo + 1.0)
    ylo, yhi = yt[0], yt[-1]
    xlo, xhi = min(xs_all), max(xs_all)
    if xhi == xlo:
        xlo, xhi = xlo - 1, xhi + 1

    def px(x):
        return left + (x - xlo) / (xhi - xlo) * (right - left)

    def py(y):
        return bottom - (y - ylo) / (yhi - ylo) * (bottom - top)

    for t in yt:
        draw.line([(left, py(t)), (right, py(t))], fill=GRID)
        label = f"{t:.0%}" if percent else f"{t:g}"
        _text(draw, (left - 6, py(t)), label, small, "rm")
    step = max(1, math.ceil((xhi - xlo) / 10))
    for t in range(int(math.ceil(xlo)), int(xhi) + 1, step):
        draw.line([(px(t), bottom), (px(t), bottom + 4)], fill=INK)
        _text(draw, (px(t), bottom + 7), str(t), small, "ma")
    draw.rectangle([left, top, right, bottom], outline=INK)
    _text(draw, ((left + right) // 2, y1 - 18), "epoch", normal, "ma")
    _text(draw, (x0 + 6, top - 22), ylabel, small, "la")

    for i, (label, colour, xs, ys) in enumerate(series):
        pts = [(px(x), py(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for x, y in pts:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        lx, ly = right - 200 + 100 * i, top - 12  # legend, above the plot
        draw.line([(lx, ly), (lx + 20, ly)], fill=colour, width=3)
        _text(draw, (lx + 26, ly), label, small, "lm")


def plot_curves(history, path, title=None):
    """Write curves.png: loss (left) and accuracy, train vs validation, per epoch.

    history: list of dicts with epoch, train_loss, train_acc, val_loss, val_acc (from fit).
    When the rows have lr (fit records it), a third panel on the right shows the learning rate.
    """
    has_lr = any(row.get("lr") is not None for row in history)
    W, H = 1500 if has_lr else 1000, 420
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    fonts = (_font(12), _font(15))
    epochs = [row["epoch"] for row in history]

    def col(key):
        return [row.get(key) for row in history]

    for k, (name, key, percent) in enumerate((("loss", "loss", False), ("accuracy", "acc", True))):
        series = [("train", TRAIN_COLOUR, epochs, col(f"train_{key}"))]
        if any(v is not None for v in col(f"val_{key}")):
            series.append(("validation", VAL_COLOUR, epochs, col(f"val_{key}")))
        heading = f"{title}: {name}" if title else name
        _panel(draw, (k * 500, 0, (k + 1) * 500, H), heading, name, series, fonts, percent)
    if has_lr:
        series = [("lr", TRAIN_COLOUR, epochs, col("lr"))]
        heading = f"{title}: learning rate" if title else "learning rate"
        _panel(draw, (1000, 0, 1500, H), heading, "lr (last step)", series, fonts, from_zero=True)
    img.save(path)
    return path


def plot_confusion(cm, class_names, path, title="confusion matrix (rows true, columns predicted)"):
    """Write confusion.png: a K x K grid shaded by the row share, with the counts printed.

    cm: int (K, K), row = true class, column = predicted (metrics.confusion_matrix).
    """
    cm = np.asarray(cm)
    K = cm.shape[0]
    cell = max(24, min(64, 640 // max(K, 1)))
    names = [str(c)[:18] for c in class_names]
    margin_left, margin_top = 150, 60
    W = margin_left + K * cell + 30
    H = margin_top + K * cell + 130
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    small, normal = _font(11), _font(14)
    _text(draw, (W // 2, 12), title, normal, "ma")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    for i in range(K):
        for j in range(K):
            x, y = margin_left + j * cell, margin_top + i * cell
            s = share[i, j]
            shade = tuple(int(255 - s * (255 - c)) for c in (8, 48, 107))  # white -> dark blue
            draw.rectangle([x, y, x + cell, y + cell], fill=shade, outline=GRID)
            ink = "white" if s > 0.5 else INK
            _text(draw, (x + cell / 2, y + cell / 2), str(int(cm[i, j])), small, "mm", ink)
        _text(draw, (margin_left - 6, margin_top + i * cell + cell / 2), names[i], small, "rm")
    for j in range(K):  # column names, written downwards one under another is unreadable:
        label = Image.new("RGBA", (140, 14), (255, 255, 255, 0))  # draw then rotate 90 degrees
        _text(ImageDraw.Draw(label), (139, 7), names[j], small, "rm")
        label = label.rotate(90, expand=True)
        img.paste(
            label, (int(margin_left + j * cell + cell / 2 - 7), margin_top + K * cell + 4), label
        )
    _text(draw, (margin_left + K * cell / 2, H - 8), "predicted", normal, "md")
    _text(draw, (8, margin_top - 24), "true", normal, "la")
    img.save(path)
    return path


# Explanations (minicnn.explain): heatmap overlays and grids of filters or feature maps.

# viridis (van der Walt and Smith, matplotlib's default colour map; CC0): 17 stops, every
# 16th entry of its 256-entry table, interpolated linearly (within 5/255 of the full table).
# Perceptually uniform and still ordered when printed in gray, unlike a rainbow ("jet").
VIRIDIS = np.array(
    [
        (68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139),
        (51, 99, 141), (44, 114, 142), (38, 130, 142), (33, 145, 140), (31, 160, 136),
        (40, 174, 128), (63, 188, 115), (94, 201, 98), (132, 212, 75), (173, 220, 48),
        (216, 226, 25), (253, 231, 37),
    ],
    dtype=np.float64,
)  # fmt: skip


def colormap(values, stops=VIRIDIS):
    """Map values in [0, 1] (any shape, clipped; NaN counts as 0) to uint8 RGB (..., 3)."""
    v = np.nan_to_num(np.clip(np.asarray(values, dtype=np.float64), 0, 1)) * (len(stops) - 1)
    i = np.minimum(np.floor(v).astype(np.intp), len(stops) - 2)
    frac = (v - i)[..., None]
    return np.rint(stops[i] * (1 - frac) + stops[i + 1] * frac).astype(np.uint8)


def _save(img, path):
    """Write a PNG under a temporary name, then rename: a reader never sees half a file."""
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path


def _rgb(image):
    """uint8 (C, H, W) with C = 1 or 3 -> uint8 (H, W, 3)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] not in (1, 3) or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (C, H, W) with 1 or 3 channels, got {image.shape}")
    if image.shape[0] == 1:
        image = np.repeat(image, 3, axis=0)
    return image.transpose(1, 2, 0)


def overlay(image, heatmap, alpha=0.5, scale=1):
    """The heatmap in viridis blended over the image: a PIL RGB image, scale times larger.

    image: uint8 (C, H, W), C = 1 or 3; heatmap: (H, W), values in [0, 1] (clipped).
    out = (1 - alpha) * image + alpha * viridis(heatmap)
    """
    rgb = _rgb(image).astype(np.float64)
    heat = np.asarray(heatmap)
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap {heat.shape} and image {rgb.shape[:2]} differ in size")
    out = np.rint((1 - alpha) * rgb + alpha * colormap(heat)).astype(np.uint8)
    img = Image.fromarray(out)
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def colour_bar(img, draw, xy, height):
    """Draw viridis from 1 (top) to 0 (bottom), 10 pixels wide at xy, labelled at its ends."""
    x, y = xy
    ramp = colormap(np.linspace(1, 0, height))[:, None, :].repeat(10, axis=1)  # (h, 10, 3)
    img.paste(Image.fromarray(ramp), (x, y))
    _text(draw, (x + 14, y), "1", _font(12), "lt")
    _text(draw, (x + 14, y + height), "0", _font(12), "lb")


def plot_explanation(image, heatmap, path, caption, top=(), title=None):
    """Write a PNG: the image, the heatmap over it, a colour bar, the caption and top classes.

    image: uint8 (C, H, W); heatmap (H, W) in [0, 1]; caption: e.g. "pneumonia 97.0%" (what
    the map explains); top: [(class name, probability), ...]; title: e.g. "Grad-CAM".
    """
    C, H, W = np.asarray(image).shape
    scale = max(1, 192 // max(H, W))
    side_w, side_h = W * scale, H * scale
    width, height = 2 * side_w + 300, side_h + 64
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    small, normal = _font(12), _font(14)
    if title:
        _text(draw, (10, 8), title, normal)
    plain = Image.fromarray(_rgb(image)).resize((side_w, side_h), Image.Resampling.NEAREST)
    img.paste(plain, (10, 30))
    img.paste(overlay(image, heatmap, scale=scale), (20 + side_w, 30))
    bar_x = 30 + 2 * side_w
    colour_bar(img, draw, (bar_x, 30), side_h)
    _text(draw, (10 + side_w // 2, 36 + side_h), "image", small, "ma")
    _text(draw, (20 + side_w + side_w // 2, 36 + side_h), caption, normal, "ma")
    x0, y = bar_x + 36, 30
    if top:
        _text(draw, (x0, y), "top classes", normal)
        for name, p in top:
            y += 20
            _text(draw, (x0, y), f"{p:6.1%}  {shorten(name, 32)}", small)
    return _save(img, path)


def _grid(tiles, columns, path, title=None, note=None, gap=2):
    """Write uint8 tiles (n, h, w, 3), columns per row, with a title above and a note below."""
    n, h, w, _ = tiles.shape
    rows = math.ceil(n / columns)
    top = 28 if title else 6
    width = max(columns * (w + gap) + gap + 12, 260 if title else 0)
    height = top + rows * (h + gap) + (26 if note else 6)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for k in range(n):
        r, c = divmod(k, columns)
        img.paste(Image.fromarray(tiles[k]), (6 + gap + c * (w + gap), top + r * (h + gap)))
    if title:
        _text(draw, (6, 8), title, _font(14))
    if note:
        _text(draw, (6, height - 20), note, _font(12))
    return _save(img, path)


def plot_filters(weights, path, title=None, cell=24):
    """Write a grid of convolution filters (F, C, k, k) (minicnn.explain.filters).

    Each filter is scaled by its largest |weight|: mid gray is 0, white positive, black
    negative. C = 3: one RGB tile per filter, F tiles; otherwise one gray tile per filter and
    input channel, a row per filter.
    """
    w = np.asarray(weights, dtype=np.float64)
    F, C, k, _ = w.shape
    peak = np.abs(w).max(axis=(1, 2, 3), keepdims=True)
    g = np.rint(255 * (0.5 + 0.5 * np.divide(w, peak, out=np.zeros_like(w), where=peak > 0)))
    g = g.astype(np.uint8)
    up = max(1, cell // k)
    if C == 3:
        tiles, columns, note = g.transpose(0, 2, 3, 1), min(F, 16), None  # (F, k, k, 3)
    else:
        tiles = np.repeat(g.reshape(F * C, k, k, 1), 3, axis=3)  # (F*C, k, k, 3)
        columns, note = C, "rows: filters; columns: input channels"
    tiles = tiles.repeat(up, axis=1).repeat(up, axis=2)
    return _grid(tiles, columns, path, title, note)


def plot_feature_maps(maps, path, title=None, cell=48):
    """Write a grid of one image's feature maps (C, H, W), each in viridis from its min to max."""
    m = np.asarray(maps, dtype=np.float64)
    C, H, W = m.shape
    lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
    norm = np.divide(m - lo, hi - lo, out=np.zeros_like(m), where=hi > lo)
    up = max(1, cell // max(H, W))
    tiles = colormap(norm).repeat(up, axis=1).repeat(up, axis=2)  # (C, H*up, W*up, 3)
    return _grid(tiles, math.ceil(math.sqrt(C)), path, title)


# Screening (minicnn.metrics): the ROC curve with its operating points.

POINT_COLOURS = (VAL_COLOUR, (44, 160, 44), (214, 39, 40), (148, 103, 189))  # orange, green...


def _unit_square(below, heading, side=460, left=70, top=50):
    """A white picture with a side x side plot area for [0, 1] x [0, 1], its heading, grid,
    ticks and dashed diagonal drawn, and `below` pixels under it:
    (img, draw, (x0, y0, x1, y1), px, py), px and py mapping [0, 1] to pixels."""
    x0, y0, x1, y1 = left, top, left + side, top + side
    img = Image.new("RGB", (left + side + 25, top + side + below), "white")
    draw = ImageDraw.Draw(img)
    small, normal = _font(12), _font(15)

    def px(f):
        return x0 + f * (x1 - x0)

    def py(t):
        return y1 - t * (y1 - y0)

    _text(draw, (img.width // 2, 12), heading, normal, "ma")
    for t in np.linspace(0, 1, 6):
        draw.line([(px(t), y0), (px(t), y1)], fill=GRID)
        draw.line([(x0, py(t)), (x1, py(t))], fill=GRID)
        _text(draw, (px(t), y1 + 6), f"{t:.1f}", small, "ma")
        _text(draw, (x0 - 6, py(t)), f"{t:.1f}", small, "rm")
    for k in range(0, 40, 2):
        a, b = k / 40, (k + 1) / 40
        draw.line([(px(a), py(a)), (px(b), py(b))], fill=(160, 160, 160))
    return img, draw, (x0, y0, x1, y1), px, py


def plot_roc(fpr, tpr, path, points=(), title="ROC curve", auc=None):
    """Write roc.png: the ROC curve (true positive rate against false positive rate).

    fpr, tpr: float (M,) from metrics.roc_curve; points: [(label, fpr, tpr), ...], operating
    points marked and named in the legend (e.g. the threshold chosen on validation, and 0.5
    for comparison); auc: printed in the title when given. The diagonal is chance.
    """
    below = 55 + 20 * (len(points) + 1)
    heading = title if auc is None else f"{title}, AUC {auc:.3f}"
    img, draw, (x0, y0, x1, y1), px, py = _unit_square(below, heading)  # the diagonal: chance
    small = _font(12)
    draw.rectangle([x0, y0, x1, y1], outline=INK)
    _text(draw, ((x0 + x1) // 2, y1 + 24), "false positive rate (1 - specificity)", small, "ma")
    _text(draw, (8, y0 - 24), "true positive rate (sensitivity)", small, "la")
    ok = np.isfinite(fpr) & np.isfinite(tpr)
    curve = [(px(f), py(t)) for f, t in zip(np.asarray(fpr)[ok], np.asarray(tpr)[ok])]
    if len(curve) > 1:
        draw.line(curve, fill=TRAIN_COLOUR, width=2)
    ly = y1 + 50
    draw.line([(x0, ly), (x0 + 20, ly)], fill=TRAIN_COLOUR, width=3)
    _text(draw, (x0 + 26, ly), "ROC curve", small, "lm")
    for i, (label, f, t) in enumerate(points):
        colour = POINT_COLOURS[i % len(POINT_COLOURS)]
        r = 6 if i == 0 else 5
        if math.isfinite(f) and math.isfinite(t):
            box = [px(f) - r, py(t) - r, px(f) + r, py(t) + r]
            if i == 0:
                draw.ellipse(box, fill=colour, outline=INK)
            else:
                draw.rectangle(box, fill=colour, outline=INK)
        ly += 20
        mark = [x0 + 10 - r, ly - r, x0 + 10 + r, ly + r]
        (draw.ellipse if i == 0 else draw.rectangle)(mark, fill=colour, outline=INK)
        _text(draw, (x0 + 26, ly), label, small, "lm")
    return _save(img, path)


def plot_calibration(curve, path, intervals=None, title="reliability diagram", ece=None,
                     brier=None):  # fmt: skip
    """Write calibration.png: per bin, the share of positives against the mean P(class 1).

    curve: metrics.reliability_curve's dict (edges, count, mean_score, frequency); intervals:
    optional (low, high) float (B,) per bin (bootstrap_calibration's "frequency"), drawn as
    vertical bars; ece, brier: printed in the title when given. A calibrated model's points lie
    on the diagonal; below it the model is too sure of class 1. Under the square, a histogram
    of how many images fall in each bin.
    """
    hist = 80
    figures = [(name, v) for name, v in (("ECE", ece), ("Brier", brier)) if v is not None]
    heading = ", ".join([title] + [f"{name} {v:.3f}" for name, v in figures])
    # the diagonal: perfect calibration
    img, draw, (x0, y0, x1, y1), px, py = _unit_square(45 + hist + 30, heading)
    small = _font(12)
    draw.rectangle([x0, y0, x1, y1], outline=INK)
    _text(draw, ((x0 + x1) // 2, y1 + 24), "mean P(class 1) in the bin", small, "ma")
    _text(draw, (8, y0 - 24), "share of class 1 in the bin", small, "la")
    edges, count = np.asarray(curve["edges"]), np.asarray(curve["count"])
    ms, fr = np.asarray(curve["mean_score"]), np.asarray(curve["frequency"])
    used = np.flatnonzero(count > 0)
    if intervals is not None:
        for b in used:
            lo, hi = intervals[0][b], intervals[1][b]
            if math.isfinite(lo) and math.isfinite(hi):
                draw.line([(px(ms[b]), py(lo)), (px(ms[b]), py(hi))], fill=VAL_COLOUR, width=2)
    if len(used) > 1:
        draw.line([(px(ms[b]), py(fr[b])) for b in used], fill=TRAIN_COLOUR, width=2)
    for b in used:
        r = 5
        draw.ellipse([px(ms[b]) - r, py(fr[b]) - r, px(ms[b]) + r, py(fr[b]) + r],
                     fill=TRAIN_COLOUR, outline=INK)  # fmt: skip
    hy0, hy1 = y1 + 45, y1 + 45 + hist  # the histogram of images per bin
    peak = max(int(count.max(initial=0)), 1)
    for b in range(len(count)):
        h = count[b] / peak * (hy1 - hy0)
        draw.rectangle([px(edges[b]) + 1, hy1 - h, px(edges[b + 1]) - 1, hy1], fill=GRID,
                       outline=(160, 160, 160))  # fmt: skip
    draw.line([(x0, hy1), (x1, hy1)], fill=INK)
    _text(draw, (x0, hy1 + 6), f"images per bin (highest {peak:,})", small, "la")
    return _save(img, path)
