"""Grouped splits: every image of one group (a patient, say) on the same side of a split.

A data set with several images per patient, split image by image, puts the same patient on
both sides: validation then measures how well the model recognises patients it has seen, not
how it does on new ones. `group_split` carves validation (and test) a group at a time.

The group of an image comes from its name (its path below the class folder) by a regular
expression with one group, searched in the name (`re.search`):

- "auto" (the default): DEFAULT_GROUP_BY, which reads the patient from the file names of the
  Kermany chest X-ray set: `person1_bacteria_1.jpeg` and `person1_virus_6.jpeg` -> `person1`
  (one patient can have both); `IM-0115-0001.jpeg`, `IM-0117-0001-0002.jpeg` and
  `NORMAL2-IM-0115-0001.jpeg` -> `IM-0115` (the two series share their numbers; joining them
  can only make a group larger, never leak a patient). Other names, such as Tiny ImageNet's
  `n01443537_0.JPEG`, match nothing, and such a set is split image by image as before.
- a regular expression: e.g. r"^(patient\\d+)/" for one folder per patient, or r"^(\\w+?)_"
  for the part of the name before the first underscore.
- "none": image by image.

Names that the rule does not match are groups of their own. When the rule matches no name,
the split is made image by image, exactly as `stratified_split`, and a note says so.
"""

import re
import warnings

import numpy as np

from .dataset import DataError, stratified_split

DEFAULT_GROUP_BY = r"(?:^|/)(?:NORMAL2-)?(person\d+(?=_(?:bacteria|virus)_)|IM-\d+(?=-\d))"


def group_rule(group_by="auto"):
    """The compiled rule for a group_by value, or None for "none"; DataError if unusable."""
    if group_by is None or group_by == "none":
        return None
    pattern = DEFAULT_GROUP_BY if group_by == "auto" else group_by
    try:
        rule = re.compile(pattern)
    except (re.error, TypeError) as e:
        raise DataError(f"group_by {group_by!r} is not a regular expression ({e})") from None
    if rule.groups != 1:
        raise DataError(
            f"group_by {group_by!r} must have exactly one group (...) that names the group, "
            f"it has {rule.groups}; or give 'auto' or 'none'"
        )
    return rule


def group_keys(names, group_by="auto"):
    """The group of each name: a list of str, None where the rule does not match."""
    rule = group_rule(group_by)
    if rule is None:
        return [None] * len(names)
    keys = []
    for name in names:
        m = rule.search(str(name))
        keys.append(m.group(1) if m and m.group(1) else None)
    return keys


def group_split(names, labels, fractions, seed=0, group_by="auto", class_names=None,
                part_names=None):  # fmt: skip
    """Split indices so that no group is on two sides; stratified by class and seeded.

    Inputs:
    - names: N strings, e.g. file paths below the class folder (what the rule reads)
    - labels: int (N,)
    - fractions: the share of each carved part, e.g. (0.1, 0.1) for val, test
    - seed: the same seed gives the same split
    - group_by: "auto", "none" or a regular expression with one group (module docstring)
    - class_names, part_names: what the notes call the classes and the parts (("val", ...))

    Returns:
    - parts: list of sorted int64 index arrays [rest, part_0, part_1, ...]
    - notes: what was decided: the rule, groups and images per side, fallbacks, fixes

    Each group goes to the class its images mostly have (ties: the lower label). Per class,
    the groups are shuffled (rng = np.random.default_rng(seed), one permutation per class in
    label order) and each part, in turn, takes each next group that brings its image count
    closer to round(n_class * fraction), always leaving one group in rest. A part left without
    any image of a class then gets the smallest group of that class from rest, if rest has
    two or more; the notes say so, or say why it could not. With one image per group, and
    every part given some image of every class, this is exactly `stratified_split` (same
    seed, same split); when no name has a group, `stratified_split` is used as it is.
    """
    labels = np.asarray(labels).reshape(-1)
    N = len(labels)
    if len(names) != N:
        raise DataError(f"group_split got {len(names)} names for {N} labels")
    class_names = class_names or [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
    part_names = list(part_names or [f"part {k + 1}" for k in range(len(fractions))])
    side_names = ["train", *part_names]
    keys = group_keys(names, group_by)
    matched = sum(k is not None for k in keys)
    if matched == 0:
        if group_by in (None, "none"):
            why = "group_by 'none'"
        elif group_by == "auto":
            why = "no group (patient) in the file names by the default rule"
        else:
            why = f"the group rule {group_by!r} matches none of the {N} file names"
            warnings.warn(f"{why}: split image by image", stacklevel=2)
        parts = stratified_split(labels, fractions, seed)
        notes = [f"{why}: split image by image"]
        return parts, notes + _missing_class_notes(labels, parts, side_names, class_names, False)

    rule = "the default rule" if group_by == "auto" else f"the rule {group_by!r}"
    notes = []
    if matched < N:
        notes.append(f"{N - matched} of {N} images match no group: each is a group of its own")
    group_of = np.empty(N, dtype=np.int64)  # group id per image, ids in order of appearance
    ids = {}
    for i, key in enumerate(keys):
        group_of[i] = ids.setdefault(key if key is not None else ("image", i), len(ids))
    G = len(ids)
    sizes = np.bincount(group_of, minlength=G)
    K = int(labels.max(initial=-1)) + 1
    per_class = np.zeros((G, K), dtype=np.int64)
    np.add.at(per_class, (group_of, labels), 1)
    stratum = per_class.argmax(axis=1)  # the class most of a group's images have
    mixed = int(((per_class > 0).sum(axis=1) > 1).sum())
    if mixed:
        notes.append(f"{mixed} group(s) hold images of several classes (kept together)")

    rng = np.random.default_rng(seed)
    side = np.zeros(G, dtype=np.int64)  # 0 rest, k + 1 part k
    for c in np.unique(stratum):
        order = np.flatnonzero(stratum == c)[rng.permutation(int((stratum == c).sum()))]
        n_class = int(sizes[order].sum())
        left = list(order)  # the groups still in rest, in shuffled order
        for k, frac in enumerate(fractions):
            target, count, taken = int(round(n_class * frac)), 0, []
            for g in left:
                if count >= target or len(left) - len(taken) <= 1:
                    break
                if abs(count + sizes[g] - target) < abs(count - target):
                    taken.append(g)
                    count += sizes[g]
            side[taken] = k + 1
            taken = set(taken)
            left = [g for g in left if g not in taken]
        for k, frac in enumerate(fractions):  # a part with no image of class c: one group
            if frac > 0 and not (side[order] == k + 1).any():
                if len(left) >= 2:
                    g = min(left, key=lambda g: sizes[g])  # the first smallest, in shuffled order
                    side[g] = k + 1
                    left.remove(g)
                    notes.append(
                        f"{part_names[k]} would get no {class_names[c]} images (its groups "
                        f"are few or large): moved the smallest group ({sizes[g]} images) there"
                    )
    parts = [np.flatnonzero(side[group_of] == k).astype(np.int64) for k in range(len(side_names))]
    per_side = ", ".join(
        f"{side_names[k]} {len(np.unique(group_of[p]))} groups / {len(p)} images"
        for k, p in enumerate(parts)
        if k == 0 or fractions[k - 1] > 0
    )
    notes.insert(0, f"grouped by file name ({rule}, {G} groups): {per_side}")
    return parts, notes + _missing_class_notes(labels, parts, side_names, class_names, True)


def _missing_class_notes(labels, parts, side_names, class_names, warn):
    """One note per side that has images but lacks a class the data has (warned if `warn`)."""
    notes = []
    present = np.unique(labels)
    for name, p in zip(side_names, parts):
        lacking = [class_names[c] for c in present if len(p) and not (labels[p] == c).any()]
        if lacking:
            note = (f"{name} has no {', '.join(lacking)} images: too few images or groups of "
                    "that class to give every side some")  # fmt: skip
            if warn:
                warnings.warn(note, stacklevel=3)
            notes.append(note)
    return notes
