"""minicnn.data.synthetic: deterministic, the right shapes, learnable but not trivially."""

import numpy as np
import pytest

from minicnn import data


def pooled(split, k=4):
    """(N, C*H/k*W/k) features: k x k average-pooled pixels in [0, 1]."""
    x = split.images.astype(np.float32) / 255
    N, C, H, W = x.shape
    return x.reshape(N, C, H // k, k, W // k, k).mean(axis=(3, 5)).reshape(N, -1)


def test_synthetic_shapes_names_and_determinism():
    ds = data.synthetic(num_classes=7, per_class=30, image_size=16, seed=3)
    assert ds.class_names[:2] == ["synthetic-000", "synthetic-001"] and ds.num_classes == 7
    assert len(ds.train) + len(ds.val) + len(ds.test) == 210
    assert abs(len(ds.val) - 21) <= 4 and abs(len(ds.test) - 21) <= 4
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (3, 16, 16)
        assert split.labels.dtype == np.int64 and set(split.labels) <= set(range(7))
    again = data.synthetic(num_classes=7, per_class=30, image_size=16, seed=3)
    assert np.array_equal(again.train.images, ds.train.images)
    assert np.array_equal(again.test.labels, ds.test.labels)
    other = data.synthetic(num_classes=7, per_class=30, image_size=16, seed=4)
    assert not np.array_equal(other.train.images[:10], ds.train.images[:10])
    gray = data.synthetic(num_classes=3, per_class=10, image_size=8, channels=1)
    assert gray.train.images.shape[1:] == (1, 8, 8)
    assert ds.train.images.std() > 20  # not blank
    with pytest.raises(ValueError, match="num_classes"):
        data.synthetic(num_classes=5000)


def test_synthetic_is_learnable_but_not_trivial():
    """Nearest class centroid on 4x4-pooled pixels: far above chance (10%), far from 100%."""
    ds = data.synthetic(num_classes=10, per_class=120, image_size=32, seed=0)
    Xtr, Xte = pooled(ds.train), pooled(ds.test)
    centroids = np.stack([Xtr[ds.train.labels == c].mean(axis=0) for c in range(10)])

    def accuracy(X, y):
        d2 = ((X[:, None, :] - centroids[None]) ** 2).sum(axis=-1)  # (N, K)
        return float((d2.argmin(axis=1) == y).mean())

    test_acc = accuracy(Xte, ds.test.labels)
    train_acc = accuracy(Xtr, ds.train.labels)
    assert 0.35 < test_acc < 0.85, test_acc
    assert 0.35 < train_acc < 0.85, train_acc
