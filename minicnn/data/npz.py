"""MedMNIST-style .npz files: {train,val,test}_images (N, H, W[, 3]) and _labels (N[, 1]).

`list_npz` reads the labels and checks the keys; `convert_arrays` turns the images of the
rows asked for into uint8 (N, C, S, S), exactly as a decoded file would be (images.py).
"""

import os

import numpy as np
from tqdm import tqdm

from .dataset import DataError
from .images import preprocess_array

MEDMNIST_CLASS_NAMES = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal, benign"],
}


def list_npz(path):
    """Read a .npz and check it: returns (raw images by role, labels by role, class names)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:
        raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from e
    if "train_images" not in data or "train_labels" not in data:
        raise DataError(
            f"{path} has keys {sorted(data)}; expected MedMNIST keys train_images and "
            f"train_labels (and optionally val_images, val_labels, test_images, test_labels)"
        )
    images, labels = {}, {}
    for role in ("train", "val", "test"):
        if f"{role}_images" not in data:
            continue
        if f"{role}_labels" not in data:
            raise DataError(f"{path} has {role}_images but no {role}_labels")
        raw, y = data[f"{role}_images"], data[f"{role}_labels"]
        if y.ndim == 2 and y.shape[1] > 1:
            raise DataError(
                f"{path}: {role}_labels has shape {y.shape} (several labels per image); "
                "only one class per image is supported"
            )
        y = y.reshape(-1).astype(np.int64)
        if len(y) != len(raw):
            raise DataError(
                f"{path}: {role}_images has {len(raw)} images but {role}_labels {len(y)}"
            )
        images[role], labels[role] = raw, y
    num_classes = int(max(y.max(initial=-1) for y in labels.values())) + 1
    if "class_names" in data:
        names = [str(c) for c in data["class_names"]]
    else:
        flag = os.path.basename(path).split("_")[0].split(".")[0].lower()
        names = MEDMNIST_CLASS_NAMES.get(flag, [str(i) for i in range(num_classes)])
    if len(names) < num_classes:
        raise DataError(f"{path}: labels reach {num_classes - 1} but only {len(names)} names")
    return images, labels, names


def convert_arrays(raw, image_size, channels, where, progress, rows=None):
    """(N, H, W) or (N, H, W, 1|3) images of any dtype -> uint8 (n, C, S, S), like load_image.

    rows: int (n,), the images to convert (None: all); the scale of non-uint8 arrays is
    decided on the whole array, so a row comes out the same whichever rows are asked for."""
    if raw.ndim == 4 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim not in (3, 4) or (raw.ndim == 4 and raw.shape[-1] not in (3, 4)):
        raise DataError(f"{where}: images must be (N, H, W) or (N, H, W, 3), got {raw.shape}")
    scale = 1.0
    if raw.dtype != np.uint8:  # arrays carry no mode: floats <= 1 are 0..1, wide ints 16-bit
        scale = 255.0 if raw.dtype.kind == "f" and raw.max(initial=0) <= 1.0 else 1.0
        if raw.dtype in (np.uint16, np.int32) and raw.max(initial=0) > 255:
            scale = 255.0 / 65535.0
    if rows is not None:
        raw = raw[rows]
    if raw.dtype != np.uint8:
        raw = np.clip(np.rint(raw * scale), 0, 255).astype(np.uint8)
    if raw.ndim == 4 and raw.shape[-1] == 4:  # RGBA: onto black, as files are (images.py)
        alpha = raw[..., 3:].astype(np.float32) / 255
        raw = np.rint(raw[..., :3] * alpha).astype(np.uint8)
    N, H, W = raw.shape[:3]
    gray = raw.ndim == 3
    if H == W == image_size and (gray or channels == 3):
        if gray:  # (N, S, S) -> (N, C, S, S), gray replicated like Pillow's L -> RGB
            return np.ascontiguousarray(np.repeat(raw[:, None], channels, axis=1))
        return np.ascontiguousarray(raw.transpose(0, 3, 1, 2))  # (N, S, S, 3) -> (N, 3, S, S)
    out = np.empty((N, channels, image_size, image_size), dtype=np.uint8)
    for i in tqdm(range(N), desc="resizing", unit="img", leave=False, disable=not progress):
        out[i] = preprocess_array(raw[i], image_size, channels)
    return out
