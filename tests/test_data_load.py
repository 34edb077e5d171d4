"""minicnn.data.load and load_image on layouts built here from generated images."""

import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from minicnn import data
from minicnn.data import decode, loaders

MODES = ("L", "RGB", "RGBA", "P", "I;16", "BMP", "JPEG")


def gray_value(label):
    """Every image of class `label` is one flat grey level, so pixels reveal the label."""
    return 30 + 50 * label


def write_image(path, value, mode="L", size=(12, 10)):
    """Write a flat image of grey `value` (0..255) in one of MODES."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w, h = size
    if mode == "I;16":
        a = np.full((h, w), value * 257, dtype=np.uint16)
        Image.fromarray(a).save(path, format="PNG")
    elif mode == "RGBA":
        Image.new("RGBA", size, (value, value, value, 255)).save(path, format="PNG")
    elif mode == "P":
        Image.new("RGB", size, (value,) * 3).convert("P", palette=Image.Palette.ADAPTIVE).save(
            path, format="PNG"
        )
    elif mode == "BMP":
        Image.new("RGB", size, (value,) * 3).save(path, format="BMP")
    elif mode == "JPEG":
        Image.new("RGB", size, (value,) * 3).save(path, format="JPEG", quality=95)
    else:
        Image.new(mode, size, value if mode == "L" else (value,) * 3).save(path, format="PNG")


def ext(mode):
    return {"BMP": ".bmp", "JPEG": ".jpg"}.get(mode, ".png")


def make_class_folders(root, classes, per_class):
    """root/<class>/img_<i>.<ext>, cycling through every image mode."""
    for label, cls in enumerate(classes):
        for i in range(per_class):
            mode = MODES[i % len(MODES)]
            write_image(os.path.join(root, cls, f"img_{i}{ext(mode)}"), gray_value(label), mode)


def labels_from_pixels(split, tol=3):
    """Recover each image's label from its grey level (JPEG may be off by a little)."""
    means = split.images.reshape(len(split), -1).mean(axis=1)
    labels = np.rint((means - 30) / 50).astype(np.int64)
    assert np.all(np.abs(means - (30 + 50 * labels)) <= tol)
    return labels


def zip_folder(folder, zip_path, top=None):
    """Zip `folder`, optionally inside one top-level directory `top`."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, folder).replace(os.sep, "/")
                zf.write(full, f"{top}/{rel}" if top else rel)


def quiet_load(source, **kw):
    kw.setdefault("image_size", 8)
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    kw.setdefault("cache", False)
    return data.load(source, **kw)


# ---------------------------------------------------------------- load_image: pixel formats


def test_load_image_formats_and_channels(tmp_path):
    for mode in MODES:
        p = tmp_path / f"x_{mode.replace(';', '')}{ext(mode)}"
        write_image(str(p), 130, mode)
        rgb = data.load_image(p, image_size=8, channels=3)
        gray = data.load_image(p, image_size=8, channels=1)
        assert rgb.shape == (3, 8, 8) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
        assert gray.shape == (1, 8, 8) and gray.dtype == np.uint8
        tol = 2 if mode == "JPEG" else 0
        assert np.abs(rgb.astype(int) - 130).max() <= tol, mode
        assert np.abs(gray.astype(int) - 130).max() <= tol, mode


def test_load_image_16bit_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 65535], [32768, 257 * 100]], dtype=np.uint16)
    p = tmp_path / "xray16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode in ("I;16", "I")
    out = data.load_image(p, image_size=2, channels=1)
    assert out[0].tolist() == [[0, 255], [128, 100]]


def test_load_image_rgba_is_composited_on_black(tmp_path):
    img = Image.new("RGBA", (2, 1))
    img.putpixel((0, 0), (200, 100, 50, 255))
    img.putpixel((1, 0), (200, 100, 50, 0))
    p = tmp_path / "rgba.png"
    img.save(p)
    out = data.load_image(p, image_size=2, channels=3)  # (3, 2, 2): rows stretched from 1 to 2
    assert out[:, 0, 0].tolist() == [200, 100, 50]
    assert out[:, 0, 1].tolist() == [0, 0, 0]


def test_load_image_gray_to_rgb_replicates_and_rgb_to_gray_is_luma(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    rgb = data.load_image(tmp_path / "g.png", image_size=8, channels=3)
    assert np.array_equal(rgb[0], g) and np.array_equal(rgb[1], g) and np.array_equal(rgb[2], g)
    c = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(c).save(tmp_path / "c.png")
    gray = data.load_image(tmp_path / "c.png", image_size=8, channels=1)
    assert np.array_equal(gray[0], np.asarray(Image.fromarray(c).convert("L")))


def test_load_image_accepts_file_objects_and_resizes(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (100, 60), (10, 20, 30)).save(buf, format="PNG")
    out = data.load_image(io.BytesIO(buf.getvalue()), image_size=16)
    assert out.shape == (3, 16, 16)
    assert out[:, 5, 5].tolist() == [10, 20, 30]
    with pytest.raises(FileNotFoundError, match="nope.png"):
        data.load_image(tmp_path / "nope.png")


# ---------------------------------------------------------------- layouts


def test_class_folders_stratified_split(tmp_path):
    make_class_folders(tmp_path / "set", ["cat", "dog", "eel"], per_class=10)
    ds = quiet_load(tmp_path / "set", val_fraction=0.2, test_fraction=0.1)
    assert ds.class_names == ["cat", "dog", "eel"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (21, 6, 3)
    for split, per_class in ((ds.train, 7), (ds.val, 2), (ds.test, 1)):
        assert split.images.shape[1:] == (3, 8, 8)
        assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64
        assert np.bincount(split.labels).tolist() == [per_class] * 3
        assert np.array_equal(labels_from_pixels(split), split.labels)
    assert any("stratified split" in n for n in ds.notes)


def test_stratified_split_is_seeded_disjoint_and_proportional():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    rest, val, test = data.stratified_split(labels, (0.1, 0.2), seed=3)
    assert np.bincount(labels[val]).tolist() == [5, 3, 2]
    assert np.bincount(labels[test]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([rest, val, test]).tolist()) == list(range(100))
    again = data.stratified_split(labels, (0.1, 0.2), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (rest, val, test)))
    other = data.stratified_split(labels, (0.1, 0.2), seed=4)
    assert not np.array_equal(other[1], val)
    # a class with a single image stays in train
    rest, val = data.stratified_split(np.array([0, 0, 0, 0, 1]), (0.5,), seed=0)
    assert 4 in rest and len(val) == 2


def test_split_folders_with_tiny_val_carves_from_train(tmp_path, capsys):
    root = tmp_path / "chest_xray"
    for split, n in (("train", 30), ("val", 2), ("test", 5)):
        make_class_folders(root / split, ["NORMAL", "PNEUMONIA"], per_class=n)
    ds = quiet_load(root, channels=1)
    assert ds.class_names == ["NORMAL", "PNEUMONIA"]
    # 60 train + 4 val merged, then 10% of each class (32 -> 3) carved as val
    assert (len(ds.train), len(ds.val), len(ds.test)) == (58, 6, 10)
    assert ds.train.images.shape[1:] == (1, 8, 8)
    for split in (ds.train, ds.val, ds.test):
        assert np.array_equal(labels_from_pixels(split), split.labels)
    assert any("val folder has only 4 images" in n for n in ds.notes)
    assert "val folder has only 4 images" in capsys.readouterr().out


def test_split_folders_keep_a_big_enough_val_and_test_may_be_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MIN_VAL_IMAGES", 4)
    root = tmp_path / "xr"
    make_class_folders(root / "train", ["a", "b"], per_class=20)
    make_class_folders(root / "val", ["a", "b"], per_class=3)
    ds = quiet_load(root)
    assert (len(ds.train), len(ds.val)) == (40, 6)
    assert ds.test is None
    assert np.array_equal(labels_from_pixels(ds.val), ds.val.labels)
    assert np.bincount(ds.val.labels).tolist() == [3, 3]


def test_split_folders_without_val_carve_it(tmp_path):
    root = tmp_path / "xr"
    make_class_folders(root / "train", ["a", "b"], per_class=20)
    make_class_folders(root / "test", ["a", "b"], per_class=4)
    ds = quiet_load(root, val_fraction=0.25)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 10, 8)
    assert np.array_equal(labels_from_pixels(ds.train), ds.train.labels)


def make_tiny_imagenet(root):
    """A 3-class Tiny ImageNet: unsorted wnids.txt, words.txt, train, val, unlabeled test."""
    wnids = ["n03", "n01", "n02"]  # label = sorted position: n01 -> 0, n02 -> 1, n03 -> 2
    os.makedirs(root)
    with open(os.path.join(root, "wnids.txt"), "w") as f:
        f.write("\n".join(wnids) + "\n")
    with open(os.path.join(root, "words.txt"), "w") as f:
        f.write("n01\tgoldfish, Carassius auratus\nn02\ttabby, tabby cat\nn03\tbus\nn99\tother\n")
    lines = []
    for w in wnids:
        label = sorted(wnids).index(w)
        for i in range(4):
            write_image(
                os.path.join(root, "train", w, "images", f"{w}_{i}.JPEG"),
                gray_value(label),
                "JPEG",
                (64, 64),
            )
        with open(os.path.join(root, "train", w, f"{w}_boxes.txt"), "w") as f:
            f.write("x\n")
        for i in range(2):
            name = f"val_{len(lines)}.JPEG"
            write_image(os.path.join(root, "val", "images", name), gray_value(label), "JPEG")
            lines.append(f"{name}\t{w}\t0\t0\t10\t10")
    with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    write_image(os.path.join(root, "test", "images", "test_0.JPEG"), 0, "JPEG")


def test_tiny_imagenet_zip_read_in_place(tmp_path):
    make_tiny_imagenet(str(tmp_path / "tiny-imagenet-200"))
    zip_folder(tmp_path / "tiny-imagenet-200", tmp_path / "tiny.zip", top="tiny-imagenet-200")
    ds = quiet_load(tmp_path / "tiny.zip")
    assert ds.class_ids == ["n01", "n02", "n03"]
    assert ds.class_names == ["goldfish, Carassius auratus", "tabby, tabby cat", "bus"]
    assert (len(ds.train), len(ds.val)) == (12, 6)
    assert ds.test is None
    assert np.bincount(ds.val.labels).tolist() == [2, 2, 2]
    for split in (ds.train, ds.val):
        assert np.array_equal(labels_from_pixels(split), split.labels)
    assert any("official" in n for n in ds.notes)
    assert any("test/ folder ignored" in n for n in ds.notes)
    # the unpacked folder gives the same arrays
    folder = quiet_load(tmp_path / "tiny-imagenet-200")
    assert np.array_equal(folder.train.images, ds.train.images)
    assert np.array_equal(folder.val.labels, ds.val.labels)


def test_class_folders_zip_without_top_dir(tmp_path):
    make_class_folders(tmp_path / "set", ["x", "y"], per_class=10)
    zip_folder(tmp_path / "set", tmp_path / "set.zip")
    ds = quiet_load(tmp_path / "set.zip", val_fraction=0.2, test_fraction=0.0)
    assert ds.test is None
    assert (len(ds.train), len(ds.val)) == (16, 4)
    assert np.array_equal(labels_from_pixels(ds.train), ds.train.labels)


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "CHUNK", 7)
    make_class_folders(tmp_path / "set", ["x", "y", "z"], per_class=10)
    zip_folder(tmp_path / "set", tmp_path / "set.zip")
    one = quiet_load(tmp_path / "set.zip", workers=1)
    two = quiet_load(tmp_path / "set.zip", workers=2)
    assert np.array_equal(one.train.images, two.train.images)
    assert np.array_equal(one.test.labels, two.test.labels)


# ---------------------------------------------------------------- MedMNIST .npz


def test_npz_gray_to_rgb_and_resize_like_load_image(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 6), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    path = tmp_path / "pneumoniamnist.npz"
    np.savez(path, **arrays)
    ds = quiet_load(path, image_size=16, channels=3)
    assert ds.class_names == ["normal", "pneumonia"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (20, 6, 4)
    assert ds.train.images.shape == (20, 3, 16, 16)
    assert ds.val.labels.tolist() == [0, 1, 0, 1, 0, 1]
    Image.fromarray(arrays["test_images"][3]).save(tmp_path / "t3.png")
    assert np.array_equal(ds.test.images[3], data.load_image(tmp_path / "t3.png", 16, 3))
    same = quiet_load(path, image_size=28, channels=1)  # no resize: the raw pixels
    assert np.array_equal(same.train.images[:, 0], arrays["train_images"])


def test_npz_rgb_to_gray_and_missing_val(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "blood.npz"
    np.savez(path, train_images=imgs, train_labels=np.arange(30) % 3)
    ds = quiet_load(path, image_size=8, channels=1, val_fraction=0.2)
    assert ds.class_names == ["0", "1", "2"]
    assert (len(ds.train), len(ds.val), ds.test) == (24, 6, None)
    first = np.asarray(Image.fromarray(imgs[0]).convert("L"))
    rows = np.flatnonzero((ds.train.images[:, 0] == first).all(axis=(1, 2)))
    assert len(rows) == 1 and ds.train.labels[rows[0]] == 0


def test_npz_wrong_keys_and_multilabel(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"bad\.npz has keys \['x'\]"):
        quiet_load(bad)
    multi = tmp_path / "chest.npz"
    np.savez(multi, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((2, 14)))
    with pytest.raises(ValueError, match="several labels per image"):
        quiet_load(multi)


# ---------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        quiet_load(tmp_path / "nowhere")


def test_empty_class_folder_is_named(tmp_path):
    make_class_folders(tmp_path / "set", ["a", "b"], per_class=3)
    os.makedirs(tmp_path / "set" / "c")
    with pytest.raises(ValueError, match=r"class folder .*set/c holds no images"):
        quiet_load(tmp_path / "set")
    with open(tmp_path / "set" / "c" / "readme.txt", "w") as f:
        f.write("hi")
    with pytest.raises(ValueError, match=r"set/c holds no images \(1 other files\)"):
        quiet_load(tmp_path / "set")


def test_unrecognised_layouts_list_what_is_understood(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="layouts understood"):
        quiet_load(tmp_path / "empty")
    write_image(str(tmp_path / "loose" / "a.png"), 10)
    write_image(str(tmp_path / "loose" / "b.png"), 10)
    with pytest.raises(ValueError, match="2 images but no class folders"):
        quiet_load(tmp_path / "loose")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="neither a folder"):
        quiet_load(tmp_path / "notes.txt")


def test_corrupt_images_are_skipped_with_one_warning(tmp_path):
    make_class_folders(tmp_path / "set", ["a", "b"], per_class=10)
    (tmp_path / "set" / "a" / "broken.jpg").write_bytes(b"not an image at all")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    (tmp_path / "set" / "b" / "truncated.png").write_bytes(
        buf.getvalue()[: len(buf.getvalue()) // 2]
    )
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\).*broken\.jpg") as rec:
        ds = quiet_load(tmp_path / "set", val_fraction=0.0, test_fraction=0.0)
    assert len(rec) == 1
    assert len(ds.train) == 20 and ds.val is None and ds.test is None
    assert sorted(os.path.basename(s) for s in ds.skipped) == ["broken.jpg", "truncated.png"]
    assert np.array_equal(labels_from_pixels(ds.train), ds.train.labels)


def test_all_images_corrupt(tmp_path):
    for cls in ("a", "b"):
        os.makedirs(tmp_path / "set" / cls)
        (tmp_path / "set" / cls / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no image .* could be decoded"):
        quiet_load(tmp_path / "set")


# ---------------------------------------------------------------- cache


def cached_load(source, cache_dir, **kw):
    return quiet_load(source, cache=True, cache_dir=cache_dir, **kw)


def test_cache_hit_does_not_decode(tmp_path, monkeypatch):
    make_class_folders(tmp_path / "set", ["a", "b"], per_class=6)
    (tmp_path / "set" / "a" / "broken.png").write_bytes(b"junk")
    cache_dir = tmp_path / "cache"
    with pytest.warns(UserWarning, match="skipped 1"):
        first = cached_load(tmp_path / "set", cache_dir)
    assert any("cache written" in n for n in first.notes)
    assert len(os.listdir(cache_dir)) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded despite a valid cache")

    monkeypatch.setattr(decode, "_decode_chunk", no_decoding)
    with pytest.warns(UserWarning, match="skipped 1"):  # the skipped list is cached too
        second = cached_load(tmp_path / "set", cache_dir)
    assert any("cache hit" in n for n in second.notes)
    assert np.array_equal(first.train.images, second.train.images)
    assert np.array_equal(first.val.labels, second.val.labels)
    assert second.skipped == first.skipped
    # the split settings are applied after the cache: other fractions still hit it
    with pytest.warns(UserWarning, match="skipped 1"):
        third = cached_load(tmp_path / "set", cache_dir, val_fraction=0.5, test_fraction=0.0)
    assert any("cache hit" in n for n in third.notes)
    # the carve is made on the 13 files listed (4 of a's 7 and 3 of b's 6 to val, seed 0);
    # the unreadable one fell in train: 7 val images, 5 train images
    assert (len(third.val), len(third.train)) == (7, 5)


def test_cache_is_rebuilt_when_a_file_changes_or_appears(tmp_path):
    make_class_folders(tmp_path / "set", ["a", "b"], per_class=6)
    cache_dir = tmp_path / "cache"
    cached_load(tmp_path / "set", cache_dir, val_fraction=0.0, test_fraction=0.0)
    victim = tmp_path / "set" / "a" / "img_0.png"
    st = os.stat(victim)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = cached_load(tmp_path / "set", cache_dir, val_fraction=0.0, test_fraction=0.0)
    assert any("decoded 12 images" in n for n in touched.notes)
    write_image(str(tmp_path / "set" / "b" / "new.png"), gray_value(1))
    added = cached_load(tmp_path / "set", cache_dir, val_fraction=0.0, test_fraction=0.0)
    assert any("decoded 13 images" in n for n in added.notes)
    assert len(added.train) == 13
    assert len(os.listdir(cache_dir)) == 1  # the stale cache files were removed
    other_size = cached_load(tmp_path / "set", cache_dir, image_size=4)
    assert any("decoded" in n for n in other_size.notes)


def test_corrupt_cache_is_rebuilt(tmp_path):
    make_class_folders(tmp_path / "set", ["a", "b"], per_class=6)
    zip_folder(tmp_path / "set", tmp_path / "set.zip")
    cache_dir = tmp_path / "cache"
    first = cached_load(tmp_path / "set.zip", cache_dir)
    (cache_file,) = [cache_dir / n for n in os.listdir(cache_dir)]
    blob = cache_file.read_bytes()
    cache_file.write_bytes(blob[: len(blob) // 2])  # truncated
    second = cached_load(tmp_path / "set.zip", cache_dir)
    assert any("unreadable" in n and "rebuilding" in n for n in second.notes)
    assert np.array_equal(first.train.images, second.train.images)
    third = cached_load(tmp_path / "set.zip", cache_dir)
    assert any("cache hit" in n for n in third.notes)
    cache_file.write_bytes(b"garbage")
    fourth = cached_load(tmp_path / "set.zip", cache_dir)
    assert any("rebuilding" in n for n in fourth.notes)


def test_cache_off_and_env_dir(tmp_path, monkeypatch):
    make_class_folders(tmp_path / "set", ["a", "b"], per_class=4)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "envcache"))
    quiet_load(tmp_path / "set", cache=False)
    assert not (tmp_path / "envcache").exists()
    quiet_load(tmp_path / "set", cache=True)
    names = os.listdir(tmp_path / "envcache")
    assert len(names) == 1 and names[0].startswith("set-") and names[0].endswith(".npz")
    with np.load(tmp_path / "envcache" / names[0], allow_pickle=False) as z:
        assert z["all_images"].dtype == np.uint8


def test_npz_rgba_is_composited_on_black_like_an_rgba_file(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, (6, 8, 8, 4), dtype=np.uint8)
    path = tmp_path / "rgba.npz"
    np.savez(path, train_images=imgs, train_labels=np.arange(6) % 2)
    ds = quiet_load(path, image_size=8, channels=3, val_fraction=0.5)
    for i, label in enumerate(np.arange(6) % 2):
        Image.fromarray(imgs[i], mode="RGBA").save(tmp_path / "one.png")
        expected = data.load_image(tmp_path / "one.png", 8, 3)
        found = [
            (img == expected).all() for img in np.concatenate([ds.train.images, ds.val.images])
        ]
        assert sum(found) >= 1, f"image {i} (label {label}) differs from the file's pixels"


# ---------------------------------------------------------------- walking folders


def test_walk_reads_each_folder_once_and_stops_at_the_depth_bound(tmp_path):
    from minicnn.data.sources import printable, walk

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"")
    deep = tmp_path / "d" / "d" / "d" / "d"
    deep.mkdir(parents=True)
    try:
        os.symlink(tmp_path / "a", tmp_path / "b")  # inside the tree: read at its own place
        os.symlink(tmp_path / "gone", tmp_path / "broken")
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    left_out = []
    listing = [(rel, files) for rel, _, files in walk(tmp_path, left_out, max_depth=2)]
    assert listing == [("", []), ("a/", ["x.png"]), ("d/", []), ("d/d/", [])]
    assert left_out == [
        f"broken link: {tmp_path / 'broken'}",
        f"not followed: {tmp_path / 'b'} -> {tmp_path / 'a'}, a link to a folder inside the "
        "tree, read at its own place",
        f"not read: folders below {tmp_path / 'd' / 'd'} (deeper than 2)",
    ]
    assert printable("caf\udce9.png") == "caf\\xe9.png" and printable("café") == "café"
