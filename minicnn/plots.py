"""Charts as PNG files drawn with Pillow's ImageDraw: learning curves and a confusion matrix.

No plotting library: a chart here is a few lines, rectangles and labels on a white canvas.
"""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def _panel(draw, box, title, ylabel, series, fonts, percent=False):
    """One line chart in box (x0, y0, x1, y1): series is [(label, colour, xs, ys), ...]."""
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
    """Write curves.png: loss (left) and accuracy (right), train vs validation, per epoch.

    history: list of dicts with epoch, train_loss, train_acc, val_loss, val_acc (from fit).
    """
    W, H = 1000, 420
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
        _panel(draw, (k * W // 2, 0, (k + 1) * W // 2, H), heading, name, series, fonts, percent)
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
