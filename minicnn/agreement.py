"""What the ranks of a data-parallel run must agree on before the first step, and the words
for what differs: the settings, the parameters' shapes, the class names, and each split's
size with a checksum of its labels and of a sample of its pixels."""

import json
import zlib

import numpy as np


def facts(model, train, val, ranks, settings):
    """This rank's facts, as JSON-ready values; every rank's must equal rank 0's."""
    return {
        "ranks": ranks,
        "settings": settings,
        "parameters": [[list(p.shape), p.trainable] for p in model.parameters()],
        "class_names": list(model.class_names) if model.class_names is not None else None,
        "train": _split_facts(train),
        "val": _split_facts(val),
    }


def differences(every):
    """What each rank has that rank 0 has not, in words, from the list of every rank's facts."""
    return [
        _difference(r, key, theirs[key], every[0][key])
        for r, theirs in enumerate(every)
        for key in every[0]
        if theirs[key] != every[0][key]
    ]


def _split_facts(split):
    """What two ranks must agree on about a split: sizes, a checksum of labels and pixels."""
    if split is None:
        return None
    step = max(1, len(split) // 256)  # 256 images spread over the split, not all of them
    return {
        "images": [len(split), *split.images.shape[1:]],
        "labels_crc32": zlib.crc32(np.ascontiguousarray(split.labels).tobytes()),
        "pixels_crc32": zlib.crc32(np.ascontiguousarray(split.images[::step]).tobytes()),
    }


def _short(value):
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _difference(r, key, theirs, root):
    """What rank r has that rank 0 has not, in words."""
    if key in ("train", "val") and theirs and root and theirs["images"] != root["images"]:
        n, shape = theirs["images"][0], tuple(theirs["images"][1:])
        return f"rank {r} has {n} {key} images of {shape}, rank 0 {root['images'][0]} of " + str(
            tuple(root["images"][1:])
        )
    if key in ("train", "val") and theirs and root:
        what = "labels" if theirs["labels_crc32"] != root["labels_crc32"] else "pixels"
        return f"rank {r}'s {key} images have other {what} than rank 0's"
    if key == "settings":
        keys = [k for k in root if theirs.get(k) != root[k]]
        return ", ".join(f"rank {r} has {k} {theirs.get(k)}, rank 0 {root[k]}" for k in keys)
    return f"rank {r} has {key} {_short(theirs)}, rank 0 {_short(root)}"
