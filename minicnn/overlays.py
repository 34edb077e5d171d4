"""A grid of heat-map overlays: many explained images in one picture, a row per group.

    plot_overlay_grid([[(image, cam, "test #3\\nP 0.97"), ...], ...], "grid.png",
                      labels=["true positive", ...], title="Grad-CAM, layer 20")

Each cell is plots.overlay (the heat map in viridis over the image) with a caption under
it; a label left of each row, a colour bar on the right, and boxes given as fractions of the
frame outlined on every cell.
"""

import numpy as np
from PIL import Image, ImageDraw

from .plots import _font, _save, _text, colour_bar, overlay

LINE = 15  # pixels per line of text
GAP = 10  # pixels between cells
BOX = (255, 255, 255)  # outlines of the boxes: white shows on gray and on viridis


def _lines(draw, xy, text, font, anchor="la"):
    """Text with "\\n" line breaks, one line under the other from xy."""
    x, y = xy
    for k, line in enumerate(str(text).split("\n")):
        _text(draw, (x, y + k * LINE), line, font, anchor)


def _height(text):
    return LINE * (str(text).count("\n") + 1)


def _width(text, font):
    """The pixels the longest line of text takes in font."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return int(max(draw.textlength(line, font=font) for line in str(text).split("\n")))


def plot_overlay_grid(rows, path, labels=None, title=None, boxes=(), cell=128, alpha=0.4):
    """Write a PNG of heat-map overlays in rows, each cell captioned, each row labelled.

    rows: [[(image, heatmap, caption), ...], ...]; image uint8 (C, H, W) with C = 1 or 3,
    heatmap (H, W) in [0, 1], caption text under the cell ("\\n" breaks lines). Rows may
    differ in length; an empty one reads "none". labels: one text per row, left of it.
    boxes: [(top, bottom, left, right)], fractions of the frame, outlined on every cell.
    cell: the side of a cell in pixels (the image is enlarged by a whole factor to fit).
    """
    cells = [c for row in rows for c in row]
    if not cells:
        raise ValueError("nothing to draw: every row is empty")
    small, normal = _font(12), _font(14)
    H, W = np.asarray(cells[0][1]).shape
    scale = max(1, cell // max(H, W))
    w, h = W * scale, H * scale
    below = max(_height(c[2]) for c in cells) + 6  # the captions
    left = 10 + (max(_width(label, normal) for label in labels) + 12 if labels else 0)
    top = _height(title) + 16 if title else 10
    columns = max(len(row) for row in rows)
    width = max(left + columns * (w + GAP) + 40, 20 + (_width(title, normal) if title else 0))
    height = top + len(rows) * (h + below + GAP)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if title:
        _lines(draw, (10, 8), title, normal)
    for r, row in enumerate(rows):
        y = top + r * (h + below + GAP)
        if labels:
            _lines(draw, (10, y + (h - _height(labels[r])) // 2), labels[r], normal)
        if not row:
            _text(draw, (left, y + h // 2), "none", small, "lm")
        for c, (image, heatmap, caption) in enumerate(row):
            x = left + c * (w + GAP)
            img.paste(overlay(image, heatmap, alpha, scale), (x, y))
            for y0, y1, x0, x1 in boxes:
                draw.rectangle(
                    [x + x0 * w, y + y0 * h, x + x1 * w - 1, y + y1 * h - 1], outline=BOX
                )
            _lines(draw, (x + w // 2, y + h + 4), caption, small, "ma")
    colour_bar(img, draw, (left + columns * (w + GAP), top), h)
    return _save(img, path)
