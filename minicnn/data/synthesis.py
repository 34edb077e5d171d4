"""A generated, labelled image set for machines with no data: shapes, colours, textures, places.

What it is: each class is one combination of a shape (circle, square, triangle, cross, ring,
diamond), a colour (8 hues), a texture (solid, horizontal / vertical / diagonal stripes, dots)
and a place (centre or one of four quadrants), chosen at random (seeded) among the 1,200
combinations, so some classes differ in a single attribute. Each image varies the size, the
exact position, the colour shade, the stripe phase and period, the background level and
gradient, adds one or two distractor shapes (drawn behind or on top, in any palette colour)
and pixel noise. 5% of the labels in every split are replaced by a random other class, so the
best possible accuracy is about 95%: a network learns it clearly but cannot reach 100%.

What it is not: natural images. Results on it say that the code trains, nothing about Tiny
ImageNet, chest X-rays or the paper's figures.
"""

import numpy as np

from .dataset import DataError, Dataset, Split, stratified_split

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
COLOURS = {
    "red": (0.85, 0.15, 0.12),
    "orange": (0.95, 0.55, 0.10),
    "yellow": (0.92, 0.85, 0.15),
    "green": (0.15, 0.70, 0.20),
    "cyan": (0.15, 0.75, 0.80),
    "blue": (0.15, 0.25, 0.85),
    "purple": (0.55, 0.20, 0.75),
    "white": (0.95, 0.95, 0.95),
}
TEXTURES = ("solid", "hstripes", "vstripes", "dstripes", "dots")
PLACES = ((0.5, 0.5), (0.3, 0.3), (0.3, 0.7), (0.7, 0.3), (0.7, 0.7))  # (y, x) as a fraction
LABEL_NOISE = 0.05
CHUNK = 512


def _shape_mask(kind, yy, xx, cy, cx, r):
    """Soft (antialiased) mask of one shape per image.

    Inputs: yy, xx: (H, W) pixel grids; cy, cx, r: (B,) centre and radius in pixels.
    Returns: float32 (B, H, W) in [0, 1].
    """
    dy = yy[None] - cy[:, None, None]  # (B, H, W)
    dx = xx[None] - cx[:, None, None]
    r = r[:, None, None]

    def inside(margin):  # 1 inside, 0 outside, a one-pixel ramp at the border
        return np.clip(margin + 0.5, 0.0, 1.0)

    name = SHAPES[kind]
    if name == "circle":
        return inside(r - np.hypot(dy, dx))
    if name == "square":
        return inside(0.8 * r - np.maximum(np.abs(dy), np.abs(dx)))
    if name == "diamond":
        return inside(1.15 * r - (np.abs(dy) + np.abs(dx)))
    if name == "ring":
        d = np.hypot(dy, dx)
        return inside(r - d) * inside(d - 0.55 * r)
    if name == "cross":
        w = 0.32 * r
        horizontal = inside(r - np.abs(dx)) * inside(w - np.abs(dy))
        vertical = inside(r - np.abs(dy)) * inside(w - np.abs(dx))
        return np.maximum(horizontal, vertical)
    # triangle, apex up: three half-planes (y grows downwards)
    m = inside(0.5 * r - dy)
    for sx in (0.866, -0.866):
        m = m * inside(0.5 * r - (sx * dx - 0.5 * dy))
    return m


def _texture(kind, yy, xx, period, phase):
    """Pattern in [0, 1] per image: float32 (B, H, W); period, phase: (B,)."""
    p = period[:, None, None]
    ph = phase[:, None, None]
    name = TEXTURES[kind]
    if name == "solid":
        return np.ones((len(period),) + yy.shape, dtype=np.float32)
    if name == "hstripes":
        t = yy[None] / p
    elif name == "vstripes":
        t = xx[None] / p
    elif name == "dstripes":
        t = (yy[None] + xx[None]) / (1.414 * p)
    else:  # dots on a grid
        s = np.sin(2 * np.pi * (yy[None] / p + ph)) * np.sin(2 * np.pi * (xx[None] / p + ph))
        return (s > 0.35).astype(np.float32)
    return (np.sin(2 * np.pi * (t + ph)) > 0).astype(np.float32)


def _paint(canvas, mask, colour):
    """canvas (B, 3, H, W) <- blend towards colour (B, 3, [H, W]) where mask (B, H, W) is 1."""
    m = mask[:, None]
    if colour.ndim == 2:
        colour = colour[:, :, None, None]
    canvas *= 1.0 - m
    canvas += m * colour


def _render(attrs, image_size, rng):
    """Draw images for rows of class attributes (B, 4): shape, colour, texture, place.

    Returns float32 (B, 3, S, S) in [0, 1].
    """
    B, S = len(attrs), image_size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    palette = np.array(list(COLOURS.values()), dtype=np.float32)

    # background: a grey level with a linear gradient in a random direction and a faint tint
    level = rng.uniform(0.15, 0.6, B).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, B)
    ramp = (
        np.cos(theta)[:, None, None] * (xx / S - 0.5)
        + np.sin(theta)[:, None, None] * (yy / S - 0.5)
    ) * rng.uniform(0.0, 0.4, B)[:, None, None]
    tint = rng.uniform(-0.06, 0.06, (B, 3))
    canvas = (level[:, None, None, None] + ramp[:, None] + tint[:, :, None, None]).astype(
        np.float32
    )

    def distractor(on):
        kinds = rng.integers(0, len(SHAPES), B)
        cy, cx = rng.uniform(0.1, 0.9, (2, B)) * S
        r = rng.uniform(0.07, 0.12, B) * S
        colour = palette[rng.integers(0, len(palette), B)] * rng.uniform(0.6, 1.0, (B, 1))
        for k in range(len(SHAPES)):
            sel = np.flatnonzero((kinds == k) & on)
            if len(sel):
                sub = canvas[sel]
                _paint(sub, _shape_mask(k, yy, xx, cy[sel], cx[sel], r[sel]), colour[sel])
                canvas[sel] = sub

    distractor(rng.random(B) < 0.8)  # behind the object

    shape, colour_id, texture, place = attrs.T
    centre = np.array(PLACES, dtype=np.float32)[place]  # (B, 2)
    cy = (centre[:, 0] + rng.uniform(-0.06, 0.06, B)) * S
    cx = (centre[:, 1] + rng.uniform(-0.06, 0.06, B)) * S
    r = rng.uniform(0.15, 0.22, B) * S
    shade = rng.uniform(0.75, 1.05, (B, 1)) * palette[colour_id] + rng.uniform(-0.07, 0.07, (B, 3))
    period = rng.uniform(0.09, 0.14, B) * S
    phase = rng.uniform(0, 1, B)
    for k in range(len(SHAPES)):
        for t in range(len(TEXTURES)):
            sel = np.flatnonzero((shape == k) & (texture == t))
            if not len(sel):
                continue
            mask = _shape_mask(k, yy, xx, cy[sel], cx[sel], r[sel])
            pattern = _texture(t, yy, xx, period[sel], phase[sel])  # (b, S, S)
            colour = shade[sel][:, :, None, None] * (0.45 + 0.55 * pattern[:, None])
            sub = canvas[sel]
            _paint(sub, mask, colour)
            canvas[sel] = sub

    distractor(rng.random(B) < 0.4)  # on top, sometimes hiding part of the object
    canvas += 0.05 * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(canvas, 0.0, 1.0)


def synthetic(num_classes=200, per_class=100, image_size=64, seed=0, channels=3):
    """Generate a deterministic labelled image set (see the module docstring for what it is).

    Inputs:
    - num_classes: K, at most 1200; per_class: images per class before splitting
    - image_size: S; channels: C (1 gives the luma of the RGB image); seed: same seed, same set

    Returns:
    - Dataset with stratified train / val / test splits of 80% / 10% / 10% of each class,
      uint8 images (N, C, S, S), class_names "synthetic-000" ...
    """
    combos = len(SHAPES) * len(COLOURS) * len(TEXTURES) * len(PLACES)
    if not 1 <= num_classes <= combos:
        raise DataError(f"num_classes must be in 1..{combos}, got {num_classes}")
    if per_class < 3:
        raise DataError(f"per_class must be >= 3 (one each for train, val, test), got {per_class}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(combos, size=num_classes, replace=False)
    class_attrs = np.stack(
        np.unravel_index(picks, (len(SHAPES), len(COLOURS), len(TEXTURES), len(PLACES))), axis=1
    )  # (K, 4): shape, colour, texture, place

    labels = np.repeat(np.arange(num_classes), per_class)
    labels = labels[rng.permutation(len(labels))]
    N = len(labels)
    images = np.empty((N, channels, image_size, image_size), dtype=np.uint8)
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    for start in range(0, N, CHUNK):
        rgb = _render(class_attrs[labels[start : start + CHUNK]], image_size, rng)
        if channels == 1:
            rgb = np.einsum("bchw,c->bhw", rgb, luma)[:, None]
        images[start : start + CHUNK] = np.rint(rgb * 255.0)

    # label noise: the image keeps its content, the label moves to another class
    noisy = np.flatnonzero(rng.random(N) < LABEL_NOISE)
    if num_classes > 1:
        labels[noisy] = (labels[noisy] + rng.integers(1, num_classes, len(noisy))) % num_classes

    everything = Split(images, labels)
    rest, val_idx, test_idx = stratified_split(labels, (0.1, 0.1), seed)
    names = [f"synthetic-{k:03d}" for k in range(num_classes)]
    notes = [
        f"synthetic: {num_classes} classes x {per_class} images, {image_size}x{image_size}, "
        f"seed {seed}; {LABEL_NOISE:.0%} label noise (a stand-in to run the code, not real data)"
    ]
    return Dataset(
        everything.subset(rest),
        everything.subset(val_idx),
        everything.subset(test_idx),
        names,
        notes=notes,
    )
