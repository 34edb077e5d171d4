"""One image in, one uint8 (C, H, W) array out: the preprocessing shared by training and predict.

Every image, whether it comes from a folder, a zip, a MedMNIST array or `predict`, goes through
`preprocess`, so a model sees the same pixels at prediction time as in training:

1. mode to 8 bit: 16-bit grayscale (`I;16`, `I`) is scaled by 255/65535 (not cut at 255), float
   images (`F`) by 255 when they lie in [0, 1]; palette images are expanded; transparent
   images (RGBA, LA, palette with transparency) are composited onto black;
2. to `L` (channels=1, ITU-R 601-2 luma, Pillow's formula) or `RGB` (channels=3, gray is
   replicated);
3. resized to image_size x image_size with `Image.Resampling.BILINEAR`, which in Pillow widens
   its support when shrinking (antialiased, like a box/triangle prefilter). The aspect ratio is
   not kept: the whole field of view is squeezed into the square, as Keras' `target_size` does.
   Large JPEGs are first reduced in the DCT domain with `Image.draft` (to no less than twice
   the target size) which is much faster and visually equivalent.
"""

import io
import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)


def is_image_name(name):
    """True when a file name has one of the image extensions (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _to_8bit(img):
    """Return an image in one of the 8-bit modes L, LA, RGB, RGBA."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I (32-bit int, what older Pillow gives)
        a = np.asarray(img).astype(np.float64)
        a = np.clip(a, 0, 65535) * (255.0 / 65535.0)
        return Image.fromarray(np.rint(a).astype(np.uint8), mode="L")
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if np.nanmax(a, initial=0.0) <= 1.0:
            a = a * 255.0
        a = np.nan_to_num(np.clip(a, 0, 255))
        return Image.fromarray(np.rint(a).astype(np.uint8), mode="L")
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode == "PA":
        return img.convert("RGBA")
    if mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def _drop_alpha(img):
    """Composite an LA or RGBA image onto black; other modes pass through."""
    if img.mode == "LA":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, img).convert("RGB")
    return img


def preprocess(img, image_size=64, channels=3):
    """Turn a Pillow image into the network's input pixels.

    Inputs:
    - img: PIL.Image in any mode Pillow decodes
    - image_size: S, side of the square output
    - channels: C, 1 (grayscale) or 3 (RGB)

    Returns:
    - uint8 array (C, S, S), C-contiguous
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    size = (int(image_size), int(image_size))
    target = "L" if channels == 1 else "RGB"
    if img.format == "JPEG" and min(img.size) >= 4 * size[0]:
        img.draft(target, (2 * size[0], 2 * size[1]))
    img = _drop_alpha(_to_8bit(img))
    if img.mode != target:
        img = img.convert(target)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    if channels == 1:
        return np.ascontiguousarray(a[None, :, :])  # (1, S, S)
    return np.ascontiguousarray(a.transpose(2, 0, 1))  # (S, S, 3) -> (3, S, S)


def load_image(path_or_fileobj, image_size=64, channels=3):
    """Decode one image file exactly as the training loader does (for `predict`).

    Inputs:
    - path_or_fileobj: path (str or PathLike), bytes, or a binary file object
    - image_size: S; channels: C (1 or 3)

    Returns:
    - uint8 array (C, S, S)
    """
    if isinstance(path_or_fileobj, bytes | bytearray):
        path_or_fileobj = io.BytesIO(path_or_fileobj)
    elif isinstance(path_or_fileobj, str | os.PathLike) and not os.path.exists(path_or_fileobj):
        raise FileNotFoundError(f"image file not found: {os.fspath(path_or_fileobj)}")
    with Image.open(path_or_fileobj) as img:
        return preprocess(img, image_size, channels)


def preprocess_array(a, image_size=64, channels=3):
    """Preprocess a uint8 image stored as an array (MedMNIST style) like a decoded file.

    Inputs:
    - a: uint8 (H, W) grayscale or (H, W, 3) RGB
    - image_size: S; channels: C

    Returns:
    - uint8 array (C, S, S)
    """
    return preprocess(Image.fromarray(np.ascontiguousarray(a)), image_size, channels)
