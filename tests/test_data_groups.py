"""Grouped splits (minicnn.data.group_split) on hand-built names: no group on two sides,
stratified, seeded, image by image when no group is found, and the notes and errors."""

import numpy as np
import pytest

from minicnn import data
from minicnn.data import DataError, group_keys, group_split, stratified_split


def kermany_names(seed=0, normal=30, pneumonia=50):
    """Names in the Kermany style: normal patients IM-NNNN (some NORMAL2-IM-NNNN), pneumonia
    patients personN with bacteria and virus images; 1 to 6 images per patient."""
    rng = np.random.default_rng(seed)
    names, labels, patients = [], [], []
    for p in range(normal):
        for k in range(1, rng.integers(1, 7) + 1):
            prefix = "NORMAL2-" if (p + k) % 3 == 0 else ""  # both series, one patient
            names.append(f"{prefix}IM-{100 + p:04d}-{k:04d}.jpeg")
            labels.append(0)
            patients.append(f"IM-{100 + p:04d}")
    for p in range(pneumonia):
        for k in range(1, rng.integers(1, 7) + 1):
            kind = "bacteria" if k % 2 else "virus"  # a patient can have both
            names.append(f"person{p + 1}_{kind}_{k + 10 * p}.jpeg")
            labels.append(1)
            patients.append(f"person{p + 1}")
    return names, np.array(labels), np.array(patients)


def test_default_rule_reads_the_kermany_patient():
    names = [
        "person1_bacteria_1.jpeg",
        "person1_virus_6.jpeg",
        "person1502_virus_2611_2.jpeg",
        "IM-0115-0001.jpeg",
        "IM-0117-0001-0002.jpeg",
        "NORMAL2-IM-0115-0001.jpeg",
        "sub/IM-0007-0001.png",
    ]
    assert group_keys(names) == [
        "person1", "person1", "person1502", "IM-0115", "IM-0117", "IM-0115", "IM-0007"
    ]  # fmt: skip
    # Tiny ImageNet's names and other plain names are not grouped
    others = ["n01443537_0.JPEG", "images/n01443537_12.JPEG", "val_12.JPEG", "img_3.png",
              "person_1.jpg", "IM-abc.png", "xperson1_bacteria_1.jpeg"]  # fmt: skip
    assert group_keys(others) == [None] * len(others)
    assert group_keys(names, "none") == [None] * len(names)
    assert group_keys(["p7/a.png", "p7/b.png", "x.png"], r"^(p\d+)/") == ["p7", "p7", None]


def test_no_patient_on_two_sides_stratified_and_seeded():
    names, labels, patients = kermany_names()
    parts, notes = group_split(names, labels, (0.2, 0.1), seed=5, class_names=["N", "P"],
                               part_names=["val", "test"])  # fmt: skip
    rest, val, test = parts
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))
    sides = [set(patients[p]) for p in parts]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    for c in (0, 1):  # each side's share of a class is near its fraction (within 6 images,
        n = (labels == c).sum()  # the largest patient)
        assert abs((labels[val] == c).sum() - round(0.2 * n)) <= 6
        assert abs((labels[test] == c).sum() - round(0.1 * n)) <= 6
    assert len(sides[1]) >= 3 and len(sides[2]) >= 2
    again, _ = group_split(names, labels, (0.2, 0.1), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(again, parts))
    other, _ = group_split(names, labels, (0.2, 0.1), seed=6)
    assert not np.array_equal(other[1], val)
    groups = [len(s) for s in sides]
    assert notes[0] == (
        f"grouped by file name (the default rule, {len(set(patients))} groups): "
        f"train {groups[0]} groups / {len(rest)} images, val {groups[1]} groups / "
        f"{len(val)} images, test {groups[2]} groups / {len(test)} images"
    )
    # image by image, the same names put patients on both sides
    flat, _ = group_split(names, labels, (0.2, 0.1), seed=5, group_by="none")
    assert set(patients[flat[0]]) & set(patients[flat[1]])


def test_one_image_per_group_is_exactly_stratified_split():
    labels = np.repeat([0, 1, 2], [23, 41, 9])
    names = [f"case{i}_scan.png" for i in range(len(labels))]
    for seed in (0, 3):
        want = stratified_split(labels, (0.1, 0.2), seed)
        for rule in (r"^(case\d+)_", "auto", "none"):
            got, _ = group_split(names, labels, (0.1, 0.2), seed, group_by=rule)
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), rule


def test_fallbacks_say_what_was_done():
    names = [f"n0144_{i}.JPEG" for i in range(20)]
    labels = np.arange(20) % 2
    _, notes = group_split(names, labels, (0.2,), 0)
    assert notes == [
        "no group (patient) in the file names by the default rule: split image by image"
    ]
    _, notes = group_split(names, labels, (0.2,), 0, group_by="none")
    assert notes == ["group_by 'none': split image by image"]
    with pytest.warns(UserWarning, match="matches none of the 20 file names"):
        parts, notes = group_split(names, labels, (0.2,), 0, group_by=r"^(patient\d+)")
    assert "split image by image" in notes[0]
    assert all(np.array_equal(a, b) for a, b in zip(parts, stratified_split(labels, (0.2,), 0)))
    # some names match: the others are groups of their own
    mixed = ["person1_virus_1.jpeg", "person1_virus_2.jpeg"] + names[2:]
    parts, notes = group_split(mixed, labels, (0.2,), 0)
    assert "18 of 20 images match no group: each is a group of its own" in notes
    assert (0 in parts[0]) == (1 in parts[0])  # person1's two images stay together


def test_bad_rules_are_refused():
    for rule, why in (("(", "not a regular expression"), (r"^p\d+", "exactly one group"),
                      (r"(a)(b)", "exactly one group")):  # fmt: skip
        with pytest.raises(DataError, match=why):
            group_split(["a"], [0], (0.5,), 0, group_by=rule)
    with pytest.raises(DataError, match="exactly one group"):
        data.load(".", group_by="x")  # checked before the source is opened


def test_few_large_groups_move_one_group_or_say_why():
    # class 1: two patients of 5 images: a 10% share is 1 image, no patient fits it, so val
    # would get no pneumonia; the smaller patient (the first in shuffled order) is moved there
    names = [f"IM-{i:04d}-0001.jpeg" for i in range(40)]
    names += [f"person1_virus_{k}.jpeg" for k in range(5)]
    names += [f"person2_bacteria_{k}.jpeg" for k in range(5)]
    labels = np.repeat([0, 1], [40, 10])
    parts, notes = group_split(names, labels, (0.1,), 0, class_names=["normal", "pneumonia"],
                               part_names=["val"])  # fmt: skip
    assert (labels[parts[1]] == 1).sum() == 5 and (labels[parts[0]] == 1).sum() == 5
    assert any("val would get no pneumonia images" in n and "(5 images)" in n for n in notes)
    # with a single pneumonia patient, val cannot have one: say so and keep it in train
    one = names[:45]
    with pytest.warns(UserWarning, match="val has no pneumonia images"):
        parts, notes = group_split(
            one, labels[:45], (0.1,), 0, class_names=["normal", "pneumonia"], part_names=["val"]
        )
    assert (labels[parts[1]] == 1).sum() == 0 and (labels[parts[0]] == 1).sum() == 5
    assert any("val has no pneumonia images" in n for n in notes)


def test_a_group_of_two_classes_stays_together():
    names = [f"IM-{i:04d}-{k:04d}.jpeg" for k in (1, 2) for i in range(20)]
    labels = np.repeat([0, 1], 20)  # patient i has a class-0 and a class-1 image
    parts, notes = group_split(names, labels, (0.25,), 1)
    for i in range(20):
        assert (i in parts[1]) == (i + 20 in parts[1])
    assert len(parts[1]) == 10
    assert "20 group(s) hold images of several classes (kept together)" in notes
