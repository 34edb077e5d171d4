"""Recognise how a folder (or zip) of images is organised and list its files with labels.

Understood layouts, tried in this order:

1. Tiny ImageNet: `wnids.txt`, `train/<wnid>/images/*.JPEG`, `val/images/*` with
   `val/val_annotations.txt`; `words.txt` gives readable names; the unlabeled `test/` is ignored.
2. Split folders: `train/` plus `val/` (or `valid/`, `validation/`) and/or `test/`, each with
   one folder per class (the chest_xray layout `train|val|test/NORMAL|PNEUMONIA`). `test/`
   and/or `val/` without `train/` is read this way too: a set to score, with no train split.
3. Class folders: one folder per class directly under the root (images may sit in subfolders).
   A root holding only `train/<class>/` is read this way too.
"""

from dataclasses import dataclass, field

import numpy as np

from .dataset import DataError
from .images import is_image_name
from .sources import VAL_NAMES, printable

LAYOUTS_UNDERSTOOD = """layouts understood:
  1. Tiny ImageNet: wnids.txt, train/<wnid>/images/*.JPEG, val/images/ + val/val_annotations.txt
  2. split folders: train/ and val/ and/or test/, each with one folder per class
     (e.g. chest_xray: train|val|test/NORMAL|PNEUMONIA); test/ alone: a set to score
  3. class folders: one folder per class directly under the root
  4. a MedMNIST .npz file (train_images, train_labels, val_images, ...)
  (a .zip holding layout 1, 2 or 3 is read in place)"""


@dataclass
class Plan:
    """What a folder layout holds, before any image is decoded.

    - layout: "tiny-imagenet", "split-folders" or "class-folders"
    - class_ids, class_names: per class index, sorted by class id
    - groups: {"train" | "val" | "test" | "all": (list of relative paths, int64 labels (N,))}
    - names: {same keys: each image's path below its class folder}, what group rules read
    """

    layout: str
    class_ids: list
    class_names: list
    groups: dict
    notes: list = field(default_factory=list)
    names: dict = field(default_factory=dict)


def plan_layout(tree):
    """Recognise the layout of a FileTree and list its labelled images (see module docstring)."""
    top = tree.subdirs("")
    if "wnids.txt" in tree.files and "train" in top:
        return _tiny_imagenet(tree)
    split_names = [d for d in top if d.lower() in VAL_NAMES + ("test", "train")]
    has_train = any(d.lower() == "train" for d in split_names)
    alone = split_names and split_names == top and not has_train  # test/ and/or val/ alone
    if (has_train and len(split_names) > 1) or alone:
        return _split_folders(tree, split_names)
    if top == ["train"] or (any(d.lower() == "train" for d in top) and len(top) == 1):
        plan = _class_folders(tree, top[0] + "/")
        plan.notes.insert(0, "only a train/ folder: treating its class folders as the whole set")
        return plan
    if top:
        return _class_folders(tree, "")
    loose = [n for n in tree.files if is_image_name(n)]
    if loose:
        raise DataError(
            f"{tree.display()} holds {len(loose)} images but no class folders; "
            f"put the images in one folder per class.\n{LAYOUTS_UNDERSTOOD}"
        )
    raise DataError(f"{tree.display()}: layout not recognised (no folders).\n{LAYOUTS_UNDERSTOOD}")


def _images_of_class(tree, folder):
    """Sorted image paths below `folder` ('train/NORMAL/'); error if there are none."""
    files = tree.files_under(folder)
    images = [f for f in files if is_image_name(f)]
    if not images:
        other = f" ({len(files)} other files)" if files else ""
        raise DataError(f"class folder {tree.display(folder)} holds no images{other}")
    return images


def _class_groups(tree, root, class_ids, folders=None):
    """Paths, labels and names below the class folder of all images in `root/<class>/`.

    folders: the folder of each class id (default: the id itself)."""
    paths, labels, names = [], [], []
    for label, cls in enumerate(class_ids):
        folder = f"{root}{folders[label] if folders else cls}/"
        images = _images_of_class(tree, folder)
        paths += images
        labels += [label] * len(images)
        names += [p[len(folder) :] for p in images]
    return paths, np.asarray(labels, dtype=np.int64), names


def _class_folders(tree, root):
    class_ids = tree.subdirs(root)
    paths, labels, below = _class_groups(tree, root, class_ids)
    note = f"layout: class folders ({len(class_ids)} classes) in {tree.display(root)}"
    names = [printable(c) for c in class_ids]
    return Plan("class-folders", class_ids, names, {"all": (paths, labels)}, [note], {"all": below})


def _split_folders(tree, split_names):
    by_role = {}
    for d in split_names:
        role = "val" if d.lower() in VAL_NAMES else d.lower()
        if role in by_role:
            raise DataError(
                f"{tree.display()} has both {by_role[role]}/ and {d}/ as {role} folders"
            )
        by_role[role] = d
    first = next(by_role[r] for r in ("train", "val", "test") if r in by_role) + "/"
    class_ids = tree.subdirs(first)  # train's, else val's or test's
    if not class_ids:
        raise DataError(f"{tree.display(first)} holds no class folders")
    groups, names, notes = {}, {}, []
    if "train" not in by_role:
        notes.append("no train/ folder: a set to score, not to train on")
    for role in ("train", "val", "test"):
        if role not in by_role:
            continue
        root = by_role[role] + "/"
        folders = _same_classes(tree, root, first, class_ids, notes)
        *groups[role], names[role] = _class_groups(tree, root, class_ids, folders)
    roles = "/".join(by_role[r] for r in ("train", "val", "test") if r in by_role)
    note = f"layout: split folders {roles} ({len(class_ids)} classes) in {tree.display()}"
    ids = [printable(c) for c in class_ids]
    return Plan("split-folders", class_ids, ids, groups, [note, *notes], names)


def _same_classes(tree, root, train_root, class_ids, notes):
    """The folder in `root` of each of train's classes; folders that differ from train's only
    in case (test/normal for train/NORMAL) are matched and noted; any other difference in the
    class folders of the splits is a DataError naming both lists."""
    here = tree.subdirs(root)
    if here == class_ids:
        return None
    by_case = {c.casefold(): c for c in here}
    if len(by_case) == len(here) == len(class_ids) and set(by_case) == {
        c.casefold() for c in class_ids
    }:
        notes.append(
            f"{printable(root)} names the classes {', '.join(map(printable, here))} in another "
            f"case than {printable(train_root)}: matched them"
        )
        return [by_case[c.casefold()] for c in class_ids]
    raise DataError(
        f"the splits of {tree.display()} have different classes: {tree.display(train_root)} "
        f"has {[printable(c) for c in class_ids]}, {tree.display(root)} has "
        f"{[printable(c) for c in here]}"
    )


def _tiny_imagenet(tree):
    wnids = sorted({w.strip() for w in tree.read_text("wnids.txt").split() if w.strip()})
    words = {}
    if "words.txt" in tree.files:
        for line in tree.read_text("words.txt").splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.strip()
    index = {w: i for i, w in enumerate(wnids)}
    notes = [f"layout: Tiny ImageNet ({len(wnids)} classes) in {tree.display()}"]
    missing = [w for w in wnids if w not in tree.subdirs("train/")]
    if missing:
        raise DataError(f"{tree.display('train/')} lacks folders for wnids {missing[:5]}")
    *train, below = _class_groups(tree, "train/", wnids)
    groups, names = {"train": tuple(train)}, {"train": below}
    if "val/val_annotations.txt" in tree.files:
        paths, labels = [], []
        for line in tree.read_text("val/val_annotations.txt").splitlines():
            cols = line.split("\t")
            if len(cols) < 2 or not cols[0].strip():
                continue
            fname, wnid = cols[0].strip(), cols[1].strip()
            if wnid not in index:
                raise DataError(
                    f"{tree.display('val/val_annotations.txt')}: {fname} has wnid {wnid} "
                    "that wnids.txt does not list"
                )
            rel = f"val/images/{fname}"
            if rel not in tree.files:
                raise FileNotFoundError(f"{tree.display(rel)} listed in val_annotations.txt")
            paths.append(rel)
            labels.append(index[wnid])
        groups["val"] = (paths, np.asarray(labels, dtype=np.int64))
        names["val"] = [p[len("val/images/") :] for p in paths]
        notes.append("val: the official Tiny ImageNet validation set (val_annotations.txt)")
    if "test" in tree.subdirs(""):
        notes.append("test/ folder ignored: Tiny ImageNet's test images have no labels")
    readable = [words.get(w) or w for w in wnids]
    return Plan("tiny-imagenet", wnids, readable, groups, notes, names)
