"""One image in, one uint8 (C, H, W) array out: the preprocessing shared by training and predict.

Every image, whether it comes from a folder, a zip, a MedMNIST array or `predict`, goes through
`preprocess`, so a model sees the same pixels at prediction time as in training:

0. upright: the EXIF orientation tag (how phones store portrait photos) is applied, so the
   pixels are the ones a photo viewer shows (all 8 orientations: mirrors, rotations, and
   both transposes), and the tag is dropped;
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

A file Pillow cannot decode (truncated, not an image, corrupt) raises UnreadableImage naming
it. So does an image that declares more than MAX_PIXELS pixels (Pillow's decompression-bomb
limit, about 89 megapixels): such a file is refused before it is decoded, also in the range
where Pillow itself would only warn, since no image that large is meant for a 64x64 network
and decoding it would take gigabytes.
"""

import io
import os
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps

from .dataset import DataError
from .sources import printable

ORIENTATION = 0x0112  # the EXIF tag: 1 upright, 2..8 mirrored and/or rotated
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # 89,478,485: width * height above this is refused
# what Pillow raises on a file it cannot decode (hostile files reach the rarer ones)
PILLOW_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error)

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


class UnreadableImage(DataError):
    """An image file that cannot be decoded or is refused; the message names the file."""


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


def upright(img):
    """The image as a photo viewer shows it: its EXIF orientation (2..8) applied, tag removed.

    An image without the tag (or with 1, upright) is returned as it is, without a copy.
    """
    if img.getexif().get(ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
        img = ImageOps.exif_transpose(img)
    return img


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
        img.draft(target, (2 * size[0], 2 * size[1]))  # square: the same for any orientation
    img = _drop_alpha(_to_8bit(upright(img)))
    if img.mode != target:
        img = img.convert(target)
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    if channels == 1:
        return np.ascontiguousarray(a[None, :, :])  # (1, S, S)
    return np.ascontiguousarray(a.transpose(2, 0, 1))  # (S, S, 3) -> (3, S, S)


def load_image(path_or_fileobj, image_size=64, channels=3, name=None):
    """Decode one image file exactly as the training loader does (for `predict`).

    Inputs:
    - path_or_fileobj: path (str or PathLike), bytes, or a binary file object
    - image_size: S; channels: C (1 or 3)
    - name: what messages call the file (default: the path)

    Returns:
    - uint8 array (C, S, S)

    Raises FileNotFoundError for a missing path, UnreadableImage for a file Pillow cannot
    decode or that declares more than MAX_PIXELS pixels.
    """
    if channels not in (1, 3):  # before the decoding, whose errors mean "unreadable file"
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if isinstance(path_or_fileobj, str | os.PathLike):
        name = name or printable(path_or_fileobj)
        if not os.path.exists(path_or_fileobj):
            raise FileNotFoundError(f"image file not found: {name}")
    elif isinstance(path_or_fileobj, bytes | bytearray):
        path_or_fileobj = io.BytesIO(path_or_fileobj)
    name = name or "image"
    try:
        with warnings.catch_warnings():  # Pillow warns above MAX_PIXELS, raises above twice
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path_or_fileobj) as img:
                return preprocess(img, image_size, channels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UnreadableImage(
            f"{name}: refused, it declares more than {MAX_PIXELS:,} pixels ({e})"
        ) from None
    except FileNotFoundError:
        raise
    except PILLOW_ERRORS as e:
        raise UnreadableImage(f"cannot read image {name}: {e}") from None


def read_images(paths, image_size=64, channels=3):
    """Decode image files with load_image, skipping (not raising for) those it cannot read.

    Returns:
    - read: the paths decoded, in order
    - images: list of uint8 (C, S, S), one per path read
    - skipped: list of (path, why) for the others (missing, unreadable, refused)
    """
    read, images, skipped = [], [], []
    for path in paths:
        try:
            images.append(load_image(path, image_size, channels))
            read.append(path)
        except (FileNotFoundError, UnreadableImage) as e:
            skipped.append((path, str(e)))
    return read, images, skipped


def preprocess_array(a, image_size=64, channels=3):
    """Preprocess a uint8 image stored as an array (MedMNIST style) like a decoded file.

    Inputs:
    - a: uint8 (H, W) grayscale or (H, W, 3) RGB
    - image_size: S; channels: C

    Returns:
    - uint8 array (C, S, S)
    """
    return preprocess(Image.fromarray(np.ascontiguousarray(a)), image_size, channels)
