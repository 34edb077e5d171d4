"""`load`: a path in, a `Dataset` of uint8 splits out, whatever the layout (see layouts.py).

Three steps, so that a caller who scores one split decodes only that split:
1. list: the files of the layout (or the arrays of a .npz) with labels and names, nothing decoded;
2. choose: which files make train, val and test. A missing val (and test) is carved from train
   from labels and names alone (groups.group_split), so the carve is the same whichever splits
   are then read; `splits="all"` takes every file instead, nothing carved;
3. read: decode (or take from the cache) only the files of the splits asked for.
"""

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import cache as cache_mod
from .dataset import DataError, Dataset, Split
from .decode import decode_many
from .groups import group_rule, group_split
from .layouts import LAYOUTS_UNDERSTOOD, plan_layout
from .npz import convert_arrays, list_npz
from .sources import FileTree

MIN_VAL_IMAGES = 50  # a given val folder smaller than this ...
MIN_VAL_SHARE = 0.05  # ... or than this share of train is too small to measure anything
SPLITS = ("train", "val", "test")


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
    splits=None,
    group_by="auto",
):
    """Load a labelled image set from a folder, a .zip or a MedMNIST .npz.

    Inputs:
    - source: path of a folder, a .zip of a folder, or a .npz (layouts: see `minicnn.data`)
    - image_size: S, images are resized to S x S; channels: C, 1 (gray) or 3 (RGB)
    - val_fraction, test_fraction: shares carved (stratified, seeded, by group) when the
      source has no usable val / test split of its own
    - seed: seed of those carved splits
    - cache, cache_dir: keep decoded folders/zips on disk (default $MINICNN_CACHE or
      ~/.cache/minicnn)
    - workers: decode processes (None: all cores); progress: show tqdm bars
    - splits: the splits to read, e.g. ("val",) or "val" (None: all three); the others come
      back as None, undecoded. A carved split is the same as when all are read. "all": every
      image of the source in `Dataset.all`, nothing carved (split folders read together)
    - group_by: how carved splits keep a group's images (a patient's) together: "auto" (the
      default rule, see minicnn.data.groups), "none" (image by image) or a regular expression
      with one group, searched in each image's path below its class folder

    Returns:
    - Dataset with train, val, test (or None) Splits of uint8 (N, C, S, S) images and int64 (N,)
      labels (or `all`), class_names, class_ids, listed (images per part of the source) and
      notes (also printed) saying what was decided
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
    asked = _splits_asked(splits)
    group_rule(group_by)  # a bad rule fails before any work
    path = os.path.abspath(os.fspath(source))
    if not os.path.exists(path):
        raise FileNotFoundError(f"data source not found: {path}")

    if os.path.isfile(path) and path.lower().endswith(".npz"):
        listing = _list_npz(path, image_size, channels, progress)
    elif os.path.isdir(path) or path.lower().endswith(".zip"):
        listing = _list_tree(path, image_size, channels, cache, cache_dir, workers, progress)
    else:
        raise DataError(f"{path} is neither a folder, a .zip nor a .npz.\n{LAYOUTS_UNDERSTOOD}")
    notes = listing.notes

    fractions = (val_fraction, test_fraction)
    if asked == ("all",):
        choice = {"all": _every(listing, notes)}
    else:
        choice = _choose(listing, fractions, seed, group_by, notes)
    want = {}  # role -> sorted indices of the files the asked splits take from it
    for name in asked:
        for role, idx in choice[name] or ():
            want[role] = np.union1d(want.get(role, np.zeros(0, np.int64)), idx).astype(np.int64)
    read, skipped = listing.read(want) if want else ({}, [])  # nothing to decode or cache
    shape = (channels, image_size, image_size)
    out = {name: _assemble(choice[name], read, listing.labels, shape) for name in asked}
    train, val, test = (out.get(name) for name in SPLITS)
    counts = " / ".join(str(len(s)) if s is not None else "-" for s in (train, val, test))
    if "all" in out:
        notes.append(f"all: {len(out['all'])} images ({len(listing.class_names)} classes)")
    else:
        notes.append(f"split sizes train / val / test: {counts} "
                     f"({len(listing.class_names)} classes)")  # fmt: skip
    if asked not in (SPLITS, ("all",)):
        notes.append(f"read only the {' and '.join(asked)} split(s); the others were not decoded")
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {path}: {shown}", stacklevel=2
        )
        notes.append(f"skipped {len(skipped)} unreadable image(s)")
    for note in notes:
        print(f"minicnn.data: {note}")
    listed = {role: len(y) for role, y in listing.labels.items()}
    return Dataset(train, val, test, listing.class_names, listing.class_ids, notes, skipped,
                   listed, out.get("all"))  # fmt: skip


def _splits_asked(splits):
    """("train", "val", "test") in this order, or the ones named, or ("all",); DataError for
    another name or for "all" with others."""
    if splits is None:
        return SPLITS
    names = [splits] if isinstance(splits, str) else list(splits)
    if "all" in names and len(set(names)) == 1:
        return ("all",)
    wrong = [n for n in names if n not in SPLITS]
    if wrong or not names:
        raise DataError(f"splits must name some of train, val, test, or be all; got {splits!r}")
    return tuple(n for n in SPLITS if n in names)


@dataclass
class _Listing:
    """What a source holds before any decoding (step 1), and how to read some of it (step 3).

    - labels, names: role ("train", "val", "test" or "all") -> int64 (n,) and n names (the
      path below the class folder; None for arrays)
    - read(want): {role: sorted int64 indices} -> ({role: (index, images, failed)}, skipped):
      the images uint8 (k, C, S, S) of the files `index` that decoded, the indices `failed`
      of those that did not, and the skipped files' names
    """

    labels: dict
    names: dict
    class_names: list
    class_ids: list
    official_val: bool
    read: object
    notes: list = field(default_factory=list)


def _choose(listing, fractions, seed, group_by, notes):
    """Step 2: each split as a list of pieces (role, sorted int64 indices), or None.

    A val folder of the split-folders layout that is too small to measure anything is merged
    into train and replaced by a carved one; an official val set (Tiny ImageNet, MedMNIST) is
    always kept. Carving keeps groups together (group_split) and reports them in `notes`.
    """
    labels, names = listing.labels, listing.names
    val_fraction, test_fraction = fractions

    def carve(pool, fracs, part_names):
        y = np.concatenate([labels[r][i] for r, i in pool])
        if any(names[r] is None for r, _ in pool):  # arrays have no file names
            pool_names, rule = [""] * len(y), "none"
        else:
            pool_names, rule = [names[r][j] for r, i in pool for j in i], group_by
        parts, carve_notes = group_split(
            pool_names, y, fracs, seed, rule, listing.class_names, part_names
        )
        notes.extend(carve_notes)
        return [_take(pool, p) for p in parts]

    def whole(role):
        return [(role, np.arange(len(labels[role]), dtype=np.int64))]

    if "all" in labels:
        notes.append(
            f"no split folders: stratified split {1 - val_fraction - test_fraction:.0%} / "
            f"{val_fraction:.0%} / {test_fraction:.0%} (seed {seed})"
        )
        train, val, test = carve(whole("all"), fractions, ("val", "test"))
        return {"train": train, "val": val if val_fraction > 0 else None,
                "test": test if test_fraction > 0 else None}  # fmt: skip

    val = whole("val") if "val" in labels else None
    test = whole("test") if "test" in labels else None
    if "train" not in labels:  # test/ (or val/) alone: nothing to carve from
        return {"train": None, "val": val, "test": test}
    train = whole("train")
    n_train, n_val = len(labels["train"]), len(labels.get("val", ()))
    too_small = val is not None and (n_val < MIN_VAL_IMAGES or n_val < MIN_VAL_SHARE * n_train)
    if too_small and not listing.official_val:
        notes.append(
            f"val folder has only {n_val} images (fewer than {MIN_VAL_IMAGES} or "
            f"{MIN_VAL_SHARE:.0%} of train): merged them into train and carved a stratified "
            f"{val_fraction:.0%} validation split from train instead (seed {seed})"
        )
        train, val = train + val, None
    elif val is None:
        notes.append(
            f"no val split in the source: carved a stratified {val_fraction:.0%} validation "
            f"split from train (seed {seed})"
        )
    if val is None and val_fraction > 0:
        train, val = carve(train, (val_fraction,), ("val",))
    if test is None:
        notes.append("no labelled test split in the source: test is None")
    return {"train": train, "val": val, "test": test}


def _every(listing, notes):
    """The split "all": every file of every part of the source, nothing carved, as pieces
    (role, sorted int64 indices) in the order train, val, test; says which parts in `notes`."""
    roles = [r for r in (*SPLITS, "all") if r in listing.labels]
    sizes = {r: len(listing.labels[r]) for r in roles}
    if roles == ["all"]:
        notes.append(f"every image, nothing carved: {sizes['all']} images (no split folders)")
    else:
        parts = " + ".join(f"{r} {n}" for r, n in sizes.items())
        total = f" = {sum(sizes.values())}" if len(sizes) > 1 else ""
        notes.append(f"every image, nothing carved: {parts}{total} images")
    return [(r, np.arange(n, dtype=np.int64)) for r, n in sizes.items()]


def _take(pool, positions):
    """Positions (sorted) into the concatenation of the pieces -> the pieces they fall in."""
    out, start = [], 0
    for role, idx in pool:
        inside = positions[(positions >= start) & (positions < start + len(idx))]
        if len(inside):
            out.append((role, idx[inside - start]))
        start += len(idx)
    return out


def _assemble(pieces, read, labels, shape):
    """A Split of the files of `pieces` that decoded, in their order; None for None.

    shape: (C, S, S) of an image, for a split of no images."""
    if pieces is None:
        return None
    images, ys = [], []
    for role, idx in pieces:
        index, rows, _ = read[role]
        idx = idx[np.isin(idx, index)]  # the files that failed to decode are left out
        pos = np.searchsorted(index, idx)
        images.append(rows if len(pos) == len(index) else rows[pos])  # all of them: no copy
        ys.append(labels[role][idx])
    if len(images) == 1:
        return Split(images[0], ys[0])
    if not images:
        return Split(np.zeros((0, *shape), np.uint8), np.zeros(0, np.int64))
    return Split(np.concatenate(images), np.concatenate(ys))


def _list_npz(path, image_size, channels, progress):
    """MedMNIST .npz: labels now, images converted (resized) only for the rows read."""
    raw, labels, class_names = list_npz(path)

    def read(want):
        out = {}
        for role, idx in want.items():
            where = f"{path}:{role}"
            images = convert_arrays(raw[role], image_size, channels, where, progress, idx)
            out[role] = (idx, images, np.zeros(0, np.int64))
        return out, []

    names = {role: None for role in labels}
    notes = [f"layout: MedMNIST .npz {path}"]
    return _Listing(labels, names, class_names, class_names, True, read, notes)


def _list_tree(path, image_size, channels, use_cache, cache_dir, workers, progress):
    """Folder or zip: recognise the layout; reading decodes (or takes from the cache)."""
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
    paths = {role: p for role, (p, _) in plan.groups.items()}
    labels = {role: y for role, (_, y) in plan.groups.items()}

    def read(want):
        reader = _TreeReader(tree, paths, image_size, channels, workers, progress, notes)
        arrays = reader.cached(want, use_cache, cache_dir)
        if arrays is None:
            arrays = reader.decode(want)
            if use_cache:
                reader.save(arrays, want, cache_dir)
        out, skipped = {}, []
        for role in plan.groups:  # in the plan's order, as the files were listed
            if role in want:
                index, failed = arrays[f"{role}_index"], arrays[f"{role}_failed"]
                rows = arrays[f"{role}_images"]
                failed = failed[np.isin(failed, want[role])]  # of the files asked for
                skipped += [tree.display(paths[role][i]) for i in failed]
                out[role] = (index, rows, failed)
        return out, skipped

    official_val = plan.layout == "tiny-imagenet"
    return _Listing(labels, plan.names, plan.class_names, plan.class_ids, official_val, read,
                    notes)  # fmt: skip


class _TreeReader:
    """Decode some files of a folder or zip, with the cache of all of them or of those only.

    A cache file holds, per role, `{role}_index` (files decoded), `{role}_images` (their
    pixels) and `{role}_failed` (files that could not be decoded). A load of all splits
    uses the file of all files; a load of some splits uses it too if there is one, else
    the file of its own part (`-val`), which holds only the files it reads.
    """

    def __init__(self, tree, paths, image_size, channels, workers, progress, notes):
        self.tree, self.paths, self.notes = tree, paths, notes
        self.S, self.C, self.workers, self.progress = image_size, channels, workers, progress
        self.key = cache_mod.cache_key(tree.fingerprint(), image_size, channels)

    def _where(self, want, cache_dir):
        """(path, key, part) of the cache file for `want`; part "" when it is every file."""
        every = set(want) == set(self.paths) and all(
            len(want[r]) == len(self.paths[r]) for r in want
        )
        directory = cache_mod.cache_dir(cache_dir)
        if every:
            part, key = "", self.key
        else:
            part = "-".join(sorted(want))
            key = cache_mod.cache_key([self.key, {r: i.tolist() for r, i in want.items()}], 0, 0)
        return cache_mod.cache_path(directory, self.tree.path, key, self.S, self.C, part), key, part

    def cached(self, want, use_cache, cache_dir):
        """The cache's arrays for `want`, or None (and a note saying why, if it is not new)."""
        if not use_cache:
            return None
        members = [f"{r}_{kind}" for r in want for kind in ("index", "images", "failed")]
        full, _, _ = self._where({r: np.arange(len(p)) for r, p in self.paths.items()}, cache_dir)
        own, key, _ = self._where(want, cache_dir)
        for cpath, ckey in dict.fromkeys([(full, self.key), (own, key)]):
            t0 = time.perf_counter()
            arrays, reason = cache_mod.load(cpath, ckey, members)
            if arrays is not None and all(
                np.isin(want[r], np.union1d(arrays[f"{r}_index"], arrays[f"{r}_failed"])).all()
                for r in want
            ):
                self.notes.append(f"cache hit: {cpath} ({time.perf_counter() - t0:.1f} s)")
                return arrays
            if arrays is None and reason != "no cache yet" and cpath == own:
                self.notes.append(f"{reason}: rebuilding it")
        return None

    def decode(self, want):
        """Decode the files of `want` in one parallel pass; failures are listed, not raised."""
        roles = list(want)
        members = [self.tree.member(self.paths[r][i]) for r in roles for i in want[r]]
        t0 = time.perf_counter()
        images, ok, errors = decode_many(
            self.tree.path if self.tree.is_zip else None,
            members,
            self.S,
            self.C,
            workers=self.workers,
            progress=self.progress,
            desc=f"decoding {os.path.basename(self.tree.path)}",
        )
        self.notes.append(f"decoded {int(ok.sum())} images in {time.perf_counter() - t0:.1f} s")
        if len(ok) and not ok.any():
            first = next(iter(errors.values()), "")
            raise DataError(
                f"no image in {self.tree.display()} could be decoded (first error: {first})"
            )
        arrays, start = {}, 0
        for r in roles:
            n = len(want[r])
            good, rows = ok[start : start + n], images[start : start + n]  # a view, no copy
            arrays[f"{r}_index"] = want[r][good]
            arrays[f"{r}_images"] = rows if good.all() else rows[good]
            arrays[f"{r}_failed"] = want[r][~good]
            start += n
        return arrays

    def save(self, arrays, want, cache_dir):
        cpath, key, part = self._where(want, cache_dir)
        cache_mod.save(cpath, key, arrays)
        cache_mod.remove_stale(cpath, self.tree.path, self.S, self.C, part)
        self.notes.append(f"cache written: {cpath}")
