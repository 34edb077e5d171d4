"""`load`: a path in, a `Dataset` of uint8 splits out, whatever the layout (see layouts.py)."""

import os
import time
import warnings

import numpy as np
from tqdm import tqdm

from . import cache as cache_mod
from .dataset import DataError, Dataset, Split, stratified_split
from .decode import decode_many
from .images import preprocess_array
from .layouts import LAYOUTS_UNDERSTOOD, plan_layout
from .sources import FileTree

MIN_VAL_IMAGES = 50  # a given val folder smaller than this ...
MIN_VAL_SHARE = 0.05  # ... or than this share of train is too small to measure anything

MEDMNIST_CLASS_NAMES = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal, benign"],
}


def load(
    source,
    image_size=64,
    channels=3,
    val_fraction=0.1,
    test_fraction=0.1,
    seed=0,
    cache=True,
    cache_dir=None,
    workers=None,
    progress=True,
):
    """Load a labelled image set from a folder, a .zip or a MedMNIST .npz.

    Inputs:
    - source: path of a folder, a .zip of a folder, or a .npz (layouts: see `minicnn.data`)
    - image_size: S, images are resized to S x S; channels: C, 1 (gray) or 3 (RGB)
    - val_fraction, test_fraction: shares carved (stratified, seeded) when the source has no
      usable val / test split of its own
    - seed: seed of those carved splits
    - cache, cache_dir: keep decoded folders/zips on disk (default $MINICNN_CACHE or
      ~/.cache/minicnn)
    - workers: decode processes (None: all cores)
    - progress: show tqdm bars

    Returns:
    - Dataset with train, val, test (or None) Splits of uint8 (N, C, S, S) images and int64 (N,)
      labels, class_names, class_ids and notes (also printed) saying what was decided
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if int(image_size) < 1:
        raise DataError(f"image_size must be a positive int, got {image_size}")
    image_size = int(image_size)
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"{name} must be in [0, 1), got {frac}")
    if val_fraction + test_fraction >= 1.0:
        raise DataError("val_fraction + test_fraction must leave images for training")
    path = os.path.abspath(os.fspath(source))
    if not os.path.exists(path):
        raise FileNotFoundError(f"data source not found: {path}")

    if os.path.isfile(path) and path.lower().endswith(".npz"):
        groups, class_names, class_ids, notes, skipped = _read_npz(
            path, image_size, channels, progress
        )
        official_val = True
    elif os.path.isdir(path) or path.lower().endswith(".zip"):
        groups, class_names, class_ids, notes, skipped, layout = _read_tree(
            path, image_size, channels, cache, cache_dir, workers, progress
        )
        official_val = layout == "tiny-imagenet"
    else:
        raise DataError(f"{path} is neither a folder, a .zip nor a .npz.\n{LAYOUTS_UNDERSTOOD}")

    train, val, test = _make_splits(groups, val_fraction, test_fraction, seed, official_val, notes)
    counts = " / ".join(f"{len(s) if s is not None else 0}" for s in (train, val, test))
    notes.append(f"split sizes train / val / test: {counts} ({len(class_names)} classes)")
    for note in notes:
        print(f"minicnn.data: {note}")
    return Dataset(train, val, test, class_names, class_ids, notes, skipped)


def _make_splits(groups, val_fraction, test_fraction, seed, official_val, notes):
    """Turn the source's own groups into train / val / test, carving what is missing.

    A val folder of the split-folders layout that is too small to measure anything is merged
    into train and replaced by a carved one; an official val set (Tiny ImageNet, MedMNIST) is
    always kept.
    """
    if "all" in groups:
        everything = groups["all"]
        rest, val_idx, test_idx = stratified_split(
            everything.labels, (val_fraction, test_fraction), seed
        )
        notes.append(
            f"no split folders: stratified split {1 - val_fraction - test_fraction:.0%} / "
            f"{val_fraction:.0%} / {test_fraction:.0%} (seed {seed})"
        )
        val = everything.subset(val_idx) if val_fraction > 0 else None
        test = everything.subset(test_idx) if test_fraction > 0 else None
        return everything.subset(rest), val, test

    train, val, test = groups["train"], groups.get("val"), groups.get("test")
    too_small = val is not None and (
        len(val) < MIN_VAL_IMAGES or len(val) < MIN_VAL_SHARE * len(train)
    )
    if too_small and not official_val:
        notes.append(
            f"val folder has only {len(val)} images (fewer than {MIN_VAL_IMAGES} or "
            f"{MIN_VAL_SHARE:.0%} of train): merged them into train and carved a stratified "
            f"{val_fraction:.0%} validation split from train instead (seed {seed})"
        )
        train = Split(
            np.concatenate([train.images, val.images]), np.concatenate([train.labels, val.labels])
        )
        val = None
    elif val is None:
        notes.append(
            f"no val split in the source: carved a stratified {val_fraction:.0%} validation "
            f"split from train (seed {seed})"
        )
    if val is None and val_fraction > 0:
        rest, val_idx = stratified_split(train.labels, (val_fraction,), seed)
        train, val = train.subset(rest), train.subset(val_idx)
    if test is None:
        notes.append("no labelled test split in the source: test is None")
    return train, val, test


def _read_tree(path, image_size, channels, use_cache, cache_dir, workers, progress):
    """Folder or zip: recognise the layout, then decode (or read the cache)."""
    tree = FileTree(path)
    if not tree.is_zip and not os.path.isdir(path):
        raise DataError(f"{path} is not a valid zip file")
    if tree.skipped:  # links not followed, broken links, unreadable folders
        shown = "; ".join(tree.skipped[:5]) + ("; ..." if len(tree.skipped) > 5 else "")
        warnings.warn(f"{len(tree.skipped)} path(s) left out of {path}: {shown}", stacklevel=3)
    try:
        plan = plan_layout(tree)
    finally:
        tree.close()
    notes = list(plan.notes) + [f"left out: {why}" for why in tree.skipped]
    roles = list(plan.groups)
    key = cache_mod.cache_key(tree.fingerprint(), image_size, channels)
    cpath = cache_mod.cache_path(cache_mod.cache_dir(cache_dir), path, key, image_size, channels)

    arrays = None
    if use_cache:
        t0 = time.perf_counter()
        arrays, reason = cache_mod.load(cpath, key)
        if arrays is not None and not all(f"{r}_images" in arrays for r in roles):
            arrays, reason = None, f"cache file {cpath} lacks some splits"
        if arrays is not None:
            notes.append(f"cache hit: {cpath} ({time.perf_counter() - t0:.1f} s)")
        elif reason != "no cache yet":
            notes.append(f"{reason}: rebuilding it")

    if arrays is None:
        arrays = _decode_plan(tree, plan, image_size, channels, workers, progress, notes)
        if use_cache:
            cache_mod.save(cpath, key, arrays)
            cache_mod.remove_stale(cpath, path, image_size, channels)
            notes.append(f"cache written: {cpath}")

    skipped = [str(s) for s in arrays.get("skipped", [])]
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {path}: {shown}", stacklevel=3
        )
        notes.append(f"skipped {len(skipped)} unreadable image(s)")
    groups = {r: Split(arrays[f"{r}_images"], arrays[f"{r}_labels"]) for r in roles}
    return groups, plan.class_names, plan.class_ids, notes, skipped, plan.layout


def _decode_plan(tree, plan, image_size, channels, workers, progress, notes):
    """Decode every file of the plan in one parallel pass; drop the ones that fail."""
    roles = list(plan.groups)
    rel_paths = [p for r in roles for p in plan.groups[r][0]]
    members = [tree.member(p) for p in rel_paths]
    t0 = time.perf_counter()
    images, ok, errors = decode_many(
        tree.path if tree.is_zip else None,
        members,
        image_size,
        channels,
        workers=workers,
        progress=progress,
        desc=f"decoding {os.path.basename(tree.path)}",
    )
    notes.append(f"decoded {int(ok.sum())} images in {time.perf_counter() - t0:.1f} s")
    if not ok.any():
        first = next(iter(errors.values()), "")
        raise DataError(f"no image in {tree.display()} could be decoded (first error: {first})")
    arrays = {"skipped": np.array([tree.display(rel_paths[i]) for i in sorted(errors)], dtype=str)}
    start = 0
    for r in roles:
        paths, labels = plan.groups[r]
        good = ok[start : start + len(paths)]
        rows = images[start : start + len(paths)]  # a view: no copy when nothing failed
        arrays[f"{r}_images"] = rows if good.all() else rows[good]
        arrays[f"{r}_labels"] = labels[good]
        start += len(paths)
    return arrays


def _read_npz(path, image_size, channels, progress):
    """MedMNIST-style .npz: {train,val,test}_images (N, H, W[, 3]) uint8 and _labels (N[, 1])."""
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
    notes = [f"layout: MedMNIST .npz {path}"]
    groups = {}
    for role in ("train", "val", "test"):
        if f"{role}_images" not in data:
            continue
        if f"{role}_labels" not in data:
            raise DataError(f"{path} has {role}_images but no {role}_labels")
        raw, labels = data[f"{role}_images"], data[f"{role}_labels"]
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DataError(
                f"{path}: {role}_labels has shape {labels.shape} (several labels per image); "
                "only one class per image is supported"
            )
        labels = labels.reshape(-1).astype(np.int64)
        if len(labels) != len(raw):
            raise DataError(
                f"{path}: {role}_images has {len(raw)} images but {role}_labels {len(labels)}"
            )
        images = _convert_arrays(raw, image_size, channels, f"{path}:{role}", progress)
        groups[role] = Split(images, labels)
    num_classes = int(max(g.labels.max(initial=-1) for g in groups.values())) + 1
    if "class_names" in data:
        names = [str(c) for c in data["class_names"]]
    else:
        flag = os.path.basename(path).split("_")[0].split(".")[0].lower()
        names = MEDMNIST_CLASS_NAMES.get(flag, [str(i) for i in range(num_classes)])
    if len(names) < num_classes:
        raise DataError(f"{path}: labels reach {num_classes - 1} but only {len(names)} names")
    return groups, names, names, notes, []


def _convert_arrays(raw, image_size, channels, where, progress):
    """(N, H, W) or (N, H, W, 1|3) images of any dtype -> uint8 (N, C, S, S), like load_image."""
    if raw.ndim == 4 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim not in (3, 4) or (raw.ndim == 4 and raw.shape[-1] not in (3, 4)):
        raise DataError(f"{where}: images must be (N, H, W) or (N, H, W, 3), got {raw.shape}")
    if raw.dtype != np.uint8:  # arrays carry no mode: floats <= 1 are 0..1, wide ints 16-bit
        scale = 255.0 if raw.dtype.kind == "f" and raw.max(initial=0) <= 1.0 else 1.0
        if raw.dtype in (np.uint16, np.int32) and raw.max(initial=0) > 255:
            scale = 255.0 / 65535.0
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
