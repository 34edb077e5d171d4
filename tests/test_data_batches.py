"""minicnn.data.batches, channel_stats and Augment (checked against a plain-NumPy twin)."""

import numpy as np
import pytest

from minicnn import data
from minicnn.data import batching as batches_mod


def labelled_split(N=100, C=3, H=6, W=5):
    """Image i is filled with the value i % 256 and has label i: pixels reveal the label."""
    images = np.broadcast_to(
        (np.arange(N) % 256).astype(np.uint8)[:, None, None, None], (N, C, H, W)
    )
    return data.Split(images.copy(), np.arange(N))


def test_batches_shapes_dtypes_and_label_alignment():
    split = labelled_split()
    got = list(data.batches(split, 32, seed=7))
    assert [len(y) for _, y in got] == [32, 32, 32, 4]
    seen = []
    for x, y in got:
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape[1:] == (3, 6, 5)
        assert y.dtype == np.int64
        assert np.array_equal(np.rint(x[:, 0, 0, 0] * 255).astype(int), y)
        assert np.all(x == x[:, :1, :1, :1])  # whole image one value
        seen += y.tolist()
    assert sorted(seen) == list(range(100))
    assert seen != list(range(100))  # shuffled


def test_batches_seeded_order_drop_last_and_no_shuffle():
    split = labelled_split()
    order = [y.tolist() for _, y in data.batches(split, 16, seed=3)]
    again = [y.tolist() for _, y in data.batches(split, 16, seed=3)]
    other = [y.tolist() for _, y in data.batches(split, 16, seed=4)]
    assert order == again and order != other
    dropped = list(data.batches(split, 16, seed=3, drop_last=True))
    assert len(dropped) == 6 and all(len(y) == 16 for _, y in dropped)
    plain = np.concatenate([y for _, y in data.batches(split, 30, shuffle=False)])
    assert plain.tolist() == list(range(100))


def test_batches_normalize_matches_formula():
    rng = np.random.default_rng(0)
    split = data.Split(rng.integers(0, 256, (10, 3, 4, 4), dtype=np.uint8), np.zeros(10))
    mean = np.array([0.2, 0.5, 0.7], np.float32)
    std = np.array([0.1, 0.25, 0.3], np.float32)
    x, _ = next(data.batches(split, 10, shuffle=False, normalize=(mean, std)))
    want = (split.images / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        next(data.batches(split, 10, normalize=(mean[:2], std[:2])))


def test_channel_stats_in_chunks(monkeypatch):
    monkeypatch.setattr(batches_mod, "STATS_CHUNK", 7)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (30, 3, 5, 5), dtype=np.uint8)
    images[:, 2] = 9  # a constant channel: std floored at 1/255
    mean, std = data.channel_stats(data.Split(images, np.zeros(30)))
    assert mean.dtype == np.float32 and mean.shape == (3,) and std.shape == (3,)
    f = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std[:2], f.std(axis=(0, 2, 3))[:2], rtol=1e-5)
    assert std[2] == np.float32(1 / 255)
    x, _ = next(data.batches(data.Split(images, np.zeros(30)), 30, normalize=(mean, std)))
    np.testing.assert_allclose(x[:, :2].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x[:, :2].std(axis=(0, 2, 3)), 1, atol=1e-4)


# ---------------------------------------------------------------- augmentation


def reference_augment(x, p, hi):
    """Plain-NumPy twin of the Numba kernel: inverse affine (shift, rotation and zoom, flip),
    bilinear, edge fill, colour."""
    B, C, H, W = x.shape
    cy, cx = (H - 1) / 2, (W - 1) / 2
    i, j = np.mgrid[0:H, 0:W].astype(np.float64)
    out = np.empty_like(x)
    for n in range(B):
        c, s = np.cos(p["angle"][n]), np.sin(p["angle"][n])
        z = p["zoom"][n] if "zoom" in p else 1.0
        dy, dx = i - cy - p["ty"][n], j - cx - p["tx"][n]
        sx, sy = (c * dx + s * dy) / z + cx, (-s * dx + c * dy) / z + cy
        if p["flip"][n]:
            sx = (W - 1) - sx
        sx, sy = np.clip(sx, 0, W - 1), np.clip(sy, 0, H - 1)
        x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
        x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
        wx, wy = sx - x0, sy - y0
        img = x[n].astype(np.float64)
        top = img[:, y0, x0] * (1 - wx) + img[:, y0, x1] * wx
        bottom = img[:, y1, x0] * (1 - wx) + img[:, y1, x1] * wx
        v = top * (1 - wy) + bottom * wy
        b, k = p["bright"][n], p["contrast"][n]
        m = v.mean() * b
        out[n] = np.clip((v * b - m) * k + m, 0, hi)
    return out


def random_batch(B=5, C=3, H=9, W=7, seed=0):
    return np.random.default_rng(seed).random((B, C, H, W), dtype=np.float32)


def test_augment_identity_at_zero_strength():
    x = random_batch()
    aug = data.Augment()
    out = aug(x, np.random.default_rng(0))
    assert out is not x and np.array_equal(out, x)
    u8 = (x * 255).astype(np.uint8)
    assert np.array_equal(aug(u8), u8)
    split = labelled_split()
    plain = list(data.batches(split, 32, seed=1))
    with_identity = list(data.batches(split, 32, seed=1, augment=aug))
    for (a, ya), (b, yb) in zip(plain, with_identity):
        assert np.array_equal(a, b) and np.array_equal(ya, yb)


def test_augment_matches_numpy_reference():
    x = random_batch(B=6)
    aug = data.Augment(flip=0.5, rotate=25, shift=0.15, brightness=0.3, contrast=0.4)
    params = aug.sample(6, 9, 7, np.random.default_rng(5))
    assert params["flip"].any() and not params["flip"].all()
    np.testing.assert_allclose(aug.apply(x, params), reference_augment(x, params, 1.0), atol=1e-5)
    geometric = data.Augment(rotate=40, shift=0.2)
    params = geometric.sample(6, 9, 7, np.random.default_rng(6))
    np.testing.assert_allclose(
        geometric.apply(x, params), reference_augment(x, params, 1.0), atol=1e-5
    )


def test_augment_flip_rotate_shift_exact_cases():
    x = random_batch(B=2, H=6, W=6)
    none = {
        "flip": np.array([True, False]),
        "angle": np.zeros(2),
        "tx": np.zeros(2),
        "ty": np.zeros(2),
        "bright": np.ones(2),
        "contrast": np.ones(2),
    }
    aug = data.Augment(flip=1.0)
    out = aug.apply(x, none)
    assert np.array_equal(out[0], x[0, :, :, ::-1]) and np.array_equal(out[1], x[1])
    rot = dict(none, flip=np.zeros(2, bool), angle=np.full(2, np.pi / 2))
    out = data.Augment(rotate=90).apply(x, rot)
    np.testing.assert_allclose(out, np.rot90(x, k=-1, axes=(2, 3)), atol=1e-6)
    shift = dict(none, flip=np.zeros(2, bool), tx=np.full(2, 2.0))
    out = data.Augment(shift=0.5).apply(x, shift)
    np.testing.assert_allclose(out[..., 2:], x[..., :-2], atol=1e-7)
    np.testing.assert_allclose(out[..., :2], x[..., :1].repeat(2, axis=-1), atol=1e-7)  # edge


def test_augment_seeded_shapes_dtypes_and_range():
    aug = data.Augment(flip=0.5, rotate=15, shift=0.1, brightness=0.5, contrast=0.5)
    x = random_batch(B=8)
    a = aug(x, np.random.default_rng(3))
    b = aug(x, np.random.default_rng(3))
    c = aug(x, np.random.default_rng(4))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.min() >= 0.0 and a.max() <= 1.0
    u8 = (x * 255).astype(np.uint8)
    out = aug(u8, np.random.default_rng(3))
    assert out.dtype == np.uint8 and out.shape == u8.shape
    # own generator: seeded by the constructor
    own1 = data.Augment(rotate=10, seed=9)(x)
    own2 = data.Augment(rotate=10, seed=9)(x)
    assert np.array_equal(own1, own2)


def test_batches_with_augment_keep_labels_and_are_seeded():
    split = labelled_split(N=64)
    aug = data.Augment(flip=0.5, rotate=10, shift=0.1, brightness=0.2, contrast=0.2)
    one = list(data.batches(split, 16, seed=2, augment=aug))
    two = list(data.batches(split, 16, seed=2, augment=aug))
    plain = list(data.batches(split, 16, seed=2))
    for (x1, y1), (x2, y2), (x0, y0) in zip(one, two, plain):
        assert np.array_equal(y1, y0) and np.array_equal(x1, x2)
        assert x1.dtype == np.float32 and x1.shape == x0.shape and x1.flags.c_contiguous
        # a flat image stays flat under flips, rotations and shifts with edge fill;
        # brightness and contrast move its value by at most 20% each
        flat = x1.reshape(len(x1), -1)
        np.testing.assert_allclose(flat, flat[:, :1].repeat(flat.shape[1], axis=1), atol=1e-5)
        v0 = x0[:, 0, 0, 0]
        assert np.all(np.abs(x1[:, 0, 0, 0] - v0) <= 0.2 * v0 + 1e-6)


def test_augment_scale_matches_numpy_reference_and_keeps_the_other_draws():
    x = random_batch(B=6)
    aug = data.Augment(flip=0.5, rotate=25, shift=0.15, brightness=0.3, contrast=0.4, scale=0.3)
    params = aug.sample(6, 9, 7, np.random.default_rng(5))
    assert params["zoom"].min() >= 0.7 and params["zoom"].max() <= 1.3
    assert np.ptp(params["zoom"]) > 0.1  # drawn per image
    np.testing.assert_allclose(aug.apply(x, params), reference_augment(x, params, 1.0), atol=1e-5)
    zoom_only = data.Augment(scale=0.2)
    params = zoom_only.sample(6, 9, 7, np.random.default_rng(8))
    np.testing.assert_allclose(
        zoom_only.apply(x, params), reference_augment(x, params, 1.0), atol=1e-5
    )
    # the zoom is drawn after the six others: without scale, the same draws as before
    unscaled = data.Augment(flip=0.5, rotate=25, shift=0.15, brightness=0.3, contrast=0.4)
    before = unscaled.sample(6, 9, 7, np.random.default_rng(5))
    after = aug.sample(6, 9, 7, np.random.default_rng(5))
    for key in ("flip", "angle", "tx", "ty", "bright", "contrast"):
        assert np.array_equal(before[key], after[key]), key
    assert np.array_equal(before["zoom"], np.ones(6))
    assert not zoom_only.is_identity and "scale=0.2" in repr(zoom_only)
    with pytest.raises(ValueError, match="scale"):
        data.Augment(scale=1.0)


def test_augment_zoom_exact_cases():
    x = random_batch(B=2, H=5, W=5)
    still = {
        "flip": np.zeros(2, bool),
        "angle": np.zeros(2),
        "tx": np.zeros(2),
        "ty": np.zeros(2),
        "bright": np.ones(2),
        "contrast": np.ones(2),
    }
    aug = data.Augment(scale=0.5)
    out = aug.apply(x, dict(still, zoom=np.array([2.0, 1.0])))
    # zoom 2 about the centre (2, 2): output (i, j) shows source (1 + i/2, 1 + j/2)
    np.testing.assert_allclose(out[0, :, ::2, ::2], x[0, :, 1:4, 1:4], atol=1e-7)
    np.testing.assert_allclose(out[0, :, 1, 1], x[0, :, 1:3, 1:3].mean(axis=(1, 2)), atol=1e-6)
    assert np.array_equal(out[1], x[1])  # zoom 1: the image itself
    small = aug.apply(x, dict(still, zoom=np.full(2, 0.5)))
    # zoom 0.5: output (i, j) shows source (2i - 2, 2j - 2); outside, the nearest edge
    np.testing.assert_allclose(small[:, :, 2, 2], x[:, :, 2, 2], atol=1e-7)
    np.testing.assert_allclose(small[:, :, 1, 3], x[:, :, 0, 4], atol=1e-7)
    np.testing.assert_allclose(small[:, :, 0, 0], x[:, :, 0, 0], atol=1e-7)
