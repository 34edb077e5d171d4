"""Photos are read upright: a JPEG's EXIF orientation tag is applied on every path that reads it."""

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from minicnn import data
from minicnn.data import cache as cache_mod
from minicnn.data.images import read_images

S = 32  # the images are S x S and read at S: no resizing, so pixels compare directly


def upright_picture():
    """An asymmetric RGB picture (S, S, 3) of flat 8x8 blocks (JPEG keeps flat blocks nearly
    exact), no two blocks alike, so any mirror or rotation changes it."""
    blocks = np.arange(16).reshape(4, 4)
    rgb = np.stack([20 + 14 * blocks, 230 - 13 * blocks.T, 40 + 9 * ((blocks * 7) % 16)], -1)
    return np.repeat(np.repeat(rgb, 8, axis=0), 8, axis=1).astype(np.uint8)


def stored_pixels(upright, orientation):
    """The pixels a camera stores with tag `orientation` for a photo that shows `upright`.

    EXIF: a viewer shows the stored pixels 2 mirrored left-right, 3 turned 180 degrees,
    4 mirrored top-bottom, 5 transposed, 6 turned 90 degrees clockwise, 7 transposed across
    the other diagonal, 8 turned 90 degrees counter-clockwise. Stored = that, undone.
    """
    a = upright
    undo = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, 1),  # shown turned clockwise: stored turned counter-clockwise
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, -1),
    }
    return np.ascontiguousarray(undo[orientation](a))


def write_jpeg(path, pixels, orientation=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, format="JPEG", quality=95, subsampling=0, exif=exif)


def close(a, b, tol=4):
    return np.abs(a.astype(int) - b.astype(int)).max() <= tol


@pytest.fixture
def tagged(tmp_path):
    """photos/upright.jpg (no tag) and o1.jpg .. o8.jpg (stored pixels + tag); the upright."""
    pic = upright_picture()
    write_jpeg(str(tmp_path / "photos" / "upright.jpg"), pic)
    for o in range(1, 9):
        write_jpeg(str(tmp_path / "photos" / f"o{o}.jpg"), stored_pixels(pic, o), o)
    return pic


def test_each_orientation_loads_upright(tmp_path, tagged):
    want = tagged.transpose(2, 0, 1)  # (3, S, S)
    upright = data.load_image(tmp_path / "photos" / "upright.jpg", S, 3)
    assert close(upright, want)
    for o in range(1, 9):
        path = tmp_path / "photos" / f"o{o}.jpg"
        got = data.load_image(path, S, 3)
        assert close(got, upright), o
        assert close(data.load_image(path.read_bytes(), S, 3), upright), o  # bytes, as in zips
        if o != 1:  # the test can fail: the raw pixels are far from upright
            raw = np.asarray(Image.open(path)).transpose(2, 0, 1)
            assert np.abs(raw.astype(int) - upright.astype(int)).max() > 50, o
    paths = [str(tmp_path / "photos" / f"o{o}.jpg") for o in range(1, 9)]
    read, images, skipped = read_images(paths, S, 3)
    assert read == paths and not skipped
    assert all(close(im, upright) for im in images)


def test_gray_and_resized_reads_are_upright_too(tmp_path, tagged):
    upright = data.load_image(tmp_path / "photos" / "upright.jpg", 16, 1)
    for o in (3, 6, 8):
        assert close(data.load_image(tmp_path / "photos" / f"o{o}.jpg", 16, 1), upright, 6)


def test_data_load_folder_zip_and_cache_are_upright(tmp_path, tagged):
    root = tmp_path / "set"
    for o in range(1, 9):  # class "a": the eight tagged photos; class "b": the same, untagged
        write_jpeg(str(root / "a" / f"o{o}.jpg"), stored_pixels(tagged, o), o)
        write_jpeg(str(root / "b" / f"u{o}.jpg"), tagged)
    zip_path = tmp_path / "set.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        for cls in ("a", "b"):
            for name in sorted(os.listdir(root / cls)):
                zf.write(root / cls / name, f"set/{cls}/{name}")
    upright = data.load_image(tmp_path / "photos" / "upright.jpg", S, 3)
    for source in (root, zip_path):
        for use_cache in (False, True, True):  # the second cached load is a cache hit
            ds = data.load(source, image_size=S, val_fraction=0.0, test_fraction=0.0, seed=0,
                           cache=use_cache, cache_dir=tmp_path / "cache", workers=1,
                           progress=False)  # fmt: skip
            assert len(ds.train) == 16
            assert all(close(im, upright) for im in ds.train.images)


def test_caches_of_the_previous_loader_are_not_reused(tmp_path, monkeypatch, tagged):
    root = tmp_path / "set"
    for o in (6, 8):
        write_jpeg(str(root / "a" / f"o{o}.jpg"), stored_pixels(tagged, o), o)
        write_jpeg(str(root / "b" / f"o{o}.jpg"), stored_pixels(tagged, o), o)
    kw = dict(image_size=S, val_fraction=0.0, test_fraction=0.0, cache=True,
              cache_dir=tmp_path / "cache", workers=1, progress=False)  # fmt: skip
    monkeypatch.setattr(cache_mod, "LOADER_VERSION", cache_mod.LOADER_VERSION - 1)
    old = data.load(root, **kw)
    monkeypatch.undo()
    new = data.load(root, **kw)
    assert any("cache hit" in n for n in data.load(root, **kw).notes)
    assert not any("cache hit" in n for n in new.notes)
    assert any("decoded 4 images" in n for n in new.notes)
    assert not any("cache hit" in n for n in old.notes)
    assert len(os.listdir(tmp_path / "cache")) == 1  # the old file was replaced
