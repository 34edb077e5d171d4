"""data.load's splits: carved by patient from a train-only folder, classes checked across
split folders, and splits= decoding (and caching) only the splits asked for."""

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from minicnn import data
from minicnn.data import decode, loaders


def write_gray(path, value, size=8):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("L", (size, size), int(value)).save(path, format="PNG")


def kermany_folder(root, patients=24, seed=0):
    """root/NORMAL|PNEUMONIA/<Kermany name>: 1 to 4 images per patient; each patient's images
    are one flat grey level (4 + 8 * patient), so pixels reveal the patient.
    Returns the number of images per class."""
    rng = np.random.default_rng(seed)
    counts = [0, 0]
    for p in range(patients):
        cls = p % 2
        for k in range(1, rng.integers(1, 5) + 1):
            name = f"IM-{p:04d}-{k:04d}.png" if cls == 0 else f"person{p}_virus_{k}.png"
            write_gray(os.path.join(root, ["NORMAL", "PNEUMONIA"][cls], name), 4 + 8 * p)
            counts[cls] += 1
    return counts


def patients_of(split):
    return set(np.rint((split.images[:, 0, 0, 0] - 4) / 8).astype(int).tolist())


def quiet(source, **kw):
    kw = {"image_size": 8, "channels": 1, "workers": 1, "progress": False, "cache": False} | kw
    return data.load(source, **kw)


def test_train_only_zip_is_carved_by_patient(tmp_path):
    counts = kermany_folder(tmp_path / "src")
    zip_path = tmp_path / "chest_xray_128.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:  # chest_xray_128/train/<class>/<name>
        for cls in ("NORMAL", "PNEUMONIA"):
            for name in sorted(os.listdir(tmp_path / "src" / cls)):
                zf.write(tmp_path / "src" / cls / name, f"chest_xray_128/train/{cls}/{name}")
    ds = quiet(zip_path, val_fraction=0.2, test_fraction=0.2)
    assert ds.class_names == ["NORMAL", "PNEUMONIA"]
    assert len(ds.train) + len(ds.val) + len(ds.test) == sum(counts)
    sides = [patients_of(s) for s in (ds.train, ds.val, ds.test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert len(sides[1]) >= 2 and len(sides[2]) >= 2
    for s in (ds.val, ds.test):  # both classes on each side
        assert sorted(set(s.labels.tolist())) == [0, 1]
    assert any(n.startswith("grouped by file name (the default rule, 24 groups)") for n in ds.notes)
    # image by image, the same seed puts some patient on two sides
    flat = quiet(zip_path, val_fraction=0.2, test_fraction=0.2, group_by="none")
    assert patients_of(flat.train) & (patients_of(flat.val) | patients_of(flat.test))
    assert any("group_by 'none': split image by image" in n for n in flat.notes)


def test_a_rule_given_as_regex_groups_by_folder(tmp_path):
    for p in range(12):  # root/<class>/patient<p>/<view>.png: the patient is a folder
        for view in ("front", "side", "top"):
            path = tmp_path / "set" / f"c{p % 2}" / f"patient{p}" / f"{view}.png"
            write_gray(str(path), 4 + 8 * p)
    rule = r"^(patient\d+)/"
    ds = quiet(tmp_path / "set", val_fraction=1 / 3, test_fraction=0.0, group_by=rule)
    assert not patients_of(ds.train) & patients_of(ds.val)
    assert len(ds.val) == 12  # whole patients: 2 of 6 per class
    with pytest.warns(UserWarning, match="matches none"):
        ds = quiet(tmp_path / "set", val_fraction=0.25, test_fraction=0.0, group_by=r"^(case\d+)")
    assert any("split image by image" in n for n in ds.notes)


def test_split_folders_whose_classes_differ(tmp_path):
    for split, classes in (("train", ["NORMAL", "PNEUMONIA"]), ("test", ["NORMAL", "COVID"])):
        for c in classes:
            write_gray(str(tmp_path / "a" / split / c / "x.png"), 9)
    with pytest.raises(data.DataError, match=r"different classes.*'NORMAL', 'PNEUMONIA'.*'COVID'"):
        quiet(tmp_path / "a")
    for c in ("NORMAL",):  # test lacks a class of train
        write_gray(str(tmp_path / "b" / "train" / c / "x.png"), 9)
        write_gray(str(tmp_path / "b" / "train" / "PNEUMONIA" / "x.png"), 9)
        write_gray(str(tmp_path / "b" / "test" / c / "x.png"), 9)
    with pytest.raises(data.DataError, match="different classes"):
        quiet(tmp_path / "b")
    for split, classes in (("train", ["NORMAL", "PNEUMONIA"]), ("test", ["normal", "pneumonia"])):
        for label, c in enumerate(classes):
            write_gray(str(tmp_path / "c" / split / c / "x.png"), 40 + 100 * label)
    ds = quiet(tmp_path / "c", val_fraction=0.0)
    assert ds.test.labels.tolist() == [0, 1] and ds.test.images[:, 0, 0, 0].tolist() == [40, 140]
    assert any("in another case" in n and "matched them" in n for n in ds.notes)


class CountDecodes:
    """Wraps decode._decode_chunk and counts the files it decodes."""

    def __init__(self, monkeypatch):
        self.files = 0
        real = decode._decode_chunk

        def counting(zip_path, members, *args):
            self.files += len(members)
            return real(zip_path, members, *args)

        monkeypatch.setattr(decode, "_decode_chunk", counting)


def three_splits(root):
    """train (40 + 40), val (6 + 6), test (5 + 5) flat images; values say split and class."""
    for s, (split, n) in enumerate((("train", 40), ("val", 6), ("test", 5))):
        for c in ("a", "b"):
            for i in range(n):
                write_gray(str(root / split / c / f"{c}{i}.png"), 10 + 100 * s + 40 * (c == "b"))


def test_only_the_split_asked_for_is_decoded_and_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MIN_VAL_IMAGES", 10)
    three_splits(tmp_path / "set")
    count = CountDecodes(monkeypatch)
    kw = {"cache": True, "cache_dir": tmp_path / "cache"}
    ds = quiet(tmp_path / "set", splits="val", **kw)
    assert count.files == 12 and ds.train is None and ds.test is None
    assert len(ds.val) == 12 and set(ds.val.images[:, 0, 0, 0].tolist()) == {110, 150}
    assert ds.image_shape == (1, 8, 8)
    assert any("read only the val split(s)" in n for n in ds.notes)
    (name,) = os.listdir(tmp_path / "cache")
    assert "-val-" in name
    with np.load(tmp_path / "cache" / name) as z:
        assert sorted(k for k in z.files if k != "cache_key") == [
            "val_failed", "val_images", "val_index"
        ]  # fmt: skip
        assert len(z["val_images"]) == 12
    again = quiet(tmp_path / "set", splits=["val"], **kw)
    assert count.files == 12 and any("cache hit" in n for n in again.notes)
    full = quiet(tmp_path / "set", **kw)  # everything: one cache of all, the val file replaced
    assert count.files == 12 + 102 and len(os.listdir(tmp_path / "cache")) == 1
    assert np.array_equal(full.val.images, ds.val.images)
    test = quiet(tmp_path / "set", splits=("test",), **kw)  # read from the file of all
    assert count.files == 114 and np.array_equal(test.test.images, full.test.images)
    with pytest.raises(data.DataError, match="splits must name"):
        quiet(tmp_path / "set", splits=("valid",))


@pytest.mark.parametrize("layout", ["train+test", "class folders", "train only, grouped"])
def test_a_carved_split_is_the_one_of_a_full_load(tmp_path, monkeypatch, layout):
    root = tmp_path / "set"
    if layout == "train+test":
        three_splits(root)
        for c in ("a", "b"):
            for i in range(6):
                os.remove(root / "val" / c / f"{c}{i}.png")
        os.rmdir(root / "val" / "a"), os.rmdir(root / "val" / "b"), os.rmdir(root / "val")
    elif layout == "class folders":
        for c in ("a", "b", "c"):
            for i in range(15):
                write_gray(str(root / c / f"{i}.png"), 3 * i + 60 * (c > "a") + 60 * (c > "b"))
    else:
        kermany_folder(root / "train", patients=30)
    (root / "b_broken.txt").write_text("not an image")  # other files do not matter
    full = quiet(root, seed=3)
    for name in ("val", "test"):
        if getattr(full, name) is None:
            continue
        count = CountDecodes(monkeypatch)
        part = quiet(root, seed=3, splits=name)
        split, want = getattr(part, name), getattr(full, name)
        assert count.files == len(want) > 0
        assert np.array_equal(split.images, want.images)
        assert np.array_equal(split.labels, want.labels)
        monkeypatch.undo()


def test_npz_reads_only_the_split_asked_for(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{r}_images": rng.integers(0, 256, (n, 6, 6), dtype=np.uint8)
              for r, n in (("train", 30), ("test", 8))}  # fmt: skip
    arrays |= {"train_labels": np.arange(30) % 2, "test_labels": np.arange(8) % 2}
    np.savez(tmp_path / "m.npz", **arrays)
    full = quiet(tmp_path / "m.npz")
    for name in ("train", "val", "test"):
        part = quiet(tmp_path / "m.npz", splits=name)
        assert np.array_equal(getattr(part, name).images, getattr(full, name).images)
        assert [getattr(part, n) is None for n in ("train", "val", "test") if n != name] == [
            True,
            True,
        ]


def test_unreadable_files_count_only_in_the_split_that_reads_them(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MIN_VAL_IMAGES", 10)
    three_splits(tmp_path / "set")
    (tmp_path / "set" / "val" / "a" / "broken.png").write_bytes(b"junk")
    for cache in (False, True, True):
        with pytest.warns(UserWarning, match="skipped 1 unreadable"):
            ds = quiet(tmp_path / "set", splits="val", cache=cache, cache_dir=tmp_path / "c")
        assert len(ds.val) == 12 and ds.skipped[0].endswith("broken.png")
        ds = quiet(tmp_path / "set", splits="test", cache=cache, cache_dir=tmp_path / "c")
        assert len(ds.test) == 10 and ds.skipped == []


@pytest.mark.parametrize("layout", ["split folders", "class folders", "npz"])
def test_splits_all_reads_every_image_and_carves_nothing(tmp_path, monkeypatch, layout):
    root = tmp_path / "set"
    if layout == "split folders":
        three_splits(root)
        values = [10 + 100 * s + 40 * c for s, n in enumerate((40, 6, 5)) for c in (0, 1)
                  for _ in range(n)]  # fmt: skip
        labels = np.concatenate([np.repeat([0, 1], n) for n in (40, 6, 5)])
        listed, said = (
            {"train": 80, "val": 12, "test": 10},
            "train 80 + val 12 + test 10 = 102 images",
        )
    elif layout == "class folders":
        for c in ("a", "b"):
            for i in range(15):
                write_gray(str(root / c / f"{i:02d}.png"), 4 * i + 100 * (c == "b"))
        values = [4 * i + 100 * c for c in (0, 1) for i in range(15)]
        labels = np.repeat([0, 1], 15)
        listed, said = {"all": 30}, "30 images (no split folders)"
    else:
        rng = np.random.default_rng(0)
        raw = {"train": rng.integers(0, 256, (30, 8, 8), dtype=np.uint8),
               "test": rng.integers(0, 256, (8, 8, 8), dtype=np.uint8)}  # fmt: skip
        root = tmp_path / "m.npz"
        np.savez(root, train_images=raw["train"], train_labels=np.arange(30) % 2,
                 test_images=raw["test"], test_labels=np.arange(8) % 3 % 2)  # fmt: skip
        listed, said = {"train": 30, "test": 8}, "train 30 + test 8 = 38 images"
        labels = np.concatenate([np.arange(30) % 2, np.arange(8) % 3 % 2])
    count = CountDecodes(monkeypatch)
    ds = quiet(root, splits="all", seed=5)
    assert (ds.train, ds.val, ds.test) == (None, None, None) and ds.listed == listed
    np.testing.assert_array_equal(ds.all.labels, labels)
    if layout == "npz":  # 8x8 arrays read at 8: their own pixels, train's then test's
        np.testing.assert_array_equal(ds.all.images[:, 0], np.concatenate(list(raw.values())))
    else:
        assert count.files == len(labels)
        np.testing.assert_array_equal(ds.all.images[:, 0, 0, 0], values)
    assert f"every image, nothing carved: {said}" in ds.notes
    assert not any("stratified" in n or "group" in n for n in ds.notes)  # nothing carved
    carved = quiet(root, seed=5)  # the usual load: the same images, cut into three
    assert carved.listed == listed and carved.all is None
    parts = [s for s in (carved.train, carved.val, carved.test) if s is not None]
    assert sum(map(len, parts)) == len(labels)
    with pytest.raises(data.DataError, match="some of train, val, test, or be all; got"):
        quiet(root, splits=("all", "val"))
