"""Random flips, rotations, shifts, brightness and contrast: the paper's future-work augmentation.

Per image, with parameters drawn independently for each image of the batch:

- flip: mirror left-right with probability `flip`
- rotate, shift: one affine map, angle uniform in [-rotate, rotate] degrees about the centre and
  offset uniform in [-shift, shift] * (W, H) pixels; each output pixel is sampled bilinearly
  from the source, and pixels that would come from outside the image repeat the nearest edge
  (Keras' `fill_mode="nearest"`), so no black corners appear
- scale: zoom by z about the centre, z uniform in [1 - scale, 1 + scale] (z > 1 magnifies),
  in the same affine map and bilinear sampling as the rotation
- brightness: multiply by b, b uniform in [1 - brightness, 1 + brightness]
- contrast: blend with the image's mean intensity, (x - m) * c + m, c uniform in
  [1 - contrast, 1 + contrast]; the result is clipped to the valid range

All strengths zero gives the input back unchanged. The hot loop is one Numba kernel,
kernels/augment.py; the test suite checks it against a plain-NumPy twin.
"""

import numpy as np

import minicnn.kernels as kernels


class Augment:
    """Seeded random augmentation of an image batch.

    Inputs of the constructor:
    - flip: probability of a horizontal flip, 0..1
    - rotate: maximum rotation in degrees
    - shift: maximum shift as a fraction of the image size
    - scale: maximum relative zoom, below 1 (0.1 means factors in [0.9, 1.1])
    - brightness, contrast: maximum relative jitter (0.2 means factors in [0.8, 1.2])
    - seed: seed of the Generator used when the call gives none

    Call: `augment(x, rng=None)`
    - x: float32 (B, C, H, W) in [0, 1] (or [0, 255]), or uint8 (B, C, H, W)
    - rng: numpy Generator (batches() passes its own seeded one)
    - returns an array of the same shape and dtype (uint8 results are rounded)
    """

    def __init__(
        self, flip=0.0, rotate=0.0, shift=0.0, brightness=0.0, contrast=0.0, seed=0, scale=0.0
    ):
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip is a probability in [0, 1], got {flip}")
        for name, v in (
            ("rotate", rotate),
            ("shift", shift),
            ("brightness", brightness),
            ("contrast", contrast),
        ):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if not 0.0 <= scale < 1.0:
            raise ValueError(f"scale is a relative zoom in [0, 1), got {scale}")
        self.flip, self.rotate, self.shift = float(flip), float(rotate), float(shift)
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.scale = float(scale)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __repr__(self):
        return (
            f"Augment(flip={self.flip}, rotate={self.rotate}, shift={self.shift}, "
            f"brightness={self.brightness}, contrast={self.contrast}, seed={self.seed}"
            + (f", scale={self.scale})" if self.scale else ")")
        )

    @property
    def is_identity(self):
        return not (
            self.flip or self.rotate or self.shift or self.scale or self.brightness or self.contrast
        )

    def sample(self, B, H, W, rng):
        """Draw the per-image parameters of a batch (6 numbers per image, a 7th with scale).

        The zoom is drawn after the other six, and only with scale > 0, so that an Augment
        without it draws the same numbers as before it existed.

        Returns:
        - dict of (B,) arrays: flip (bool), angle (radians), tx, ty (pixels), bright, contrast,
          zoom (the magnification, 1 without scale)
        """
        u = rng.random((B, 6))
        zoom = 1.0 + (2 * rng.random(B) - 1) * self.scale if self.scale else np.ones(B)
        return {
            "flip": u[:, 0] < self.flip,
            "angle": np.deg2rad((2 * u[:, 1] - 1) * self.rotate),
            "tx": (2 * u[:, 2] - 1) * self.shift * W,
            "ty": (2 * u[:, 3] - 1) * self.shift * H,
            "bright": 1.0 + (2 * u[:, 4] - 1) * self.brightness,
            "contrast": 1.0 + (2 * u[:, 5] - 1) * self.contrast,
            "zoom": zoom,
        }

    def apply(self, x, params):
        """Apply given parameters (from `sample`) to x (B, C, H, W); returns a new array."""
        is_uint8 = x.dtype == np.uint8
        xf = np.ascontiguousarray(x, dtype=np.float32)
        hi = 255.0 if is_uint8 or (xf.size and xf.max() > 1.0) else 1.0
        zoom = params.get("zoom", np.ones(len(xf)))  # parameters made without a zoom: none
        geometric = bool(self.rotate or self.shift or params["flip"].any() or (zoom != 1).any())
        color = bool(self.brightness or self.contrast)
        if not (geometric or color):
            return x.copy()
        out = np.empty_like(xf)
        f64 = np.float64
        kernels.augment.affine_colour(
            xf,
            out,
            params["flip"].astype(np.bool_),
            np.cos(params["angle"]).astype(f64),
            np.sin(params["angle"]).astype(f64),
            params["tx"].astype(f64),
            params["ty"].astype(f64),
            np.asarray(zoom, dtype=f64),
            params["bright"].astype(f64),
            params["contrast"].astype(f64),
            geometric,
            color,
            hi,
        )
        if is_uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out

    def __call__(self, x, rng=None):
        rng = self.rng if rng is None else rng
        B, C, H, W = x.shape
        params = self.sample(B, H, W, rng)
        if self.is_identity:
            return x.copy()
        return self.apply(x, params)


# ----------------------------------------------------------------------------- test time

TTA = ("flip",)  # the test-time augmentations `views` knows, besides None


def views(x, tta=None):
    """The views of a batch a model is shown at test time, to average its probabilities over.

    x: (N, C, H, W), any dtype. tta None gives [x]; "flip" gives [x, x mirrored left-right]
    (a C-contiguous copy). Only for data whose classes survive a mirror: a photo's do, a
    chest X-ray's anatomy does not (its heart moves to the other side).
    """
    if tta is None:
        return [x]
    if tta == "flip":
        return [x, np.ascontiguousarray(x[..., ::-1])]
    raise ValueError(f"tta must be None or one of {TTA}, got {tta!r}")
