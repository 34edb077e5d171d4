"""Class-balanced sampling: minicnn.data.batches(balance=True) and fit(balance=True).

Each epoch draws N images with replacement, every class equally likely; the draws are seeded
like the shuffle, so data-parallel parts and a resumed epoch see the same images."""

import os
import signal

import numpy as np
import pytest

import minicnn
from minicnn import data
from minicnn.data.batching import balanced_order
from minicnn.training import epoch_seed
from minicnn.training.preemption import TrainingInterrupted


def imbalanced_split(N=100, positives=10, C=1, H=4, W=4):
    """Image i is filled with the value i and labelled 1 for i < positives, else 0."""
    images = np.broadcast_to(np.arange(N, dtype=np.uint8)[:, None, None, None], (N, C, H, W))
    return data.Split(images.copy(), (np.arange(N) < positives).astype(np.int64))


def drawn(batches_):
    """The image indices of a run of batches, read back from their pixels."""
    return np.concatenate([np.rint(x[:, 0, 0, 0] * 255).astype(int) for x, _ in batches_])


def test_balanced_epochs_draw_each_class_half_the_time_and_keep_the_epoch_size():
    split = imbalanced_split()
    ones, per_image = [], np.zeros(100)
    for epoch in range(1, 31):
        idx = drawn(data.batches(split, 16, seed=epoch_seed(0, epoch), balance=True))
        assert len(idx) == 100  # an epoch as long as the split
        ones.append(np.mean(idx < 10))
        per_image += np.bincount(idx, minlength=100)
    # 3,000 draws: the share of class 1 is 0.5 +- 0.009 (one standard deviation)
    assert abs(np.mean(ones) - 0.5) < 0.04
    # within a class, every image alike: 150 draws each expected for the 10 positives,
    # 150/9 for the 90 negatives
    assert abs(per_image[:10].mean() - 150) < 15 and per_image[:10].min() > 100
    assert abs(per_image[10:].mean() - 1500 / 90) < 2
    plain = drawn(data.batches(split, 16, seed=3))
    assert np.mean(plain < 10) == 0.1 and sorted(plain) == list(range(100))  # unchanged


def test_balanced_draws_are_seeded_and_labels_follow_the_images():
    split = imbalanced_split()
    one = list(data.batches(split, 16, seed=5, balance=True))
    two = list(data.batches(split, 16, seed=5, balance=True))
    other = drawn(data.batches(split, 16, seed=6, balance=True))
    assert np.array_equal(drawn(one), drawn(two)) and not np.array_equal(drawn(one), other)
    for x, y in one:
        assert np.array_equal(y, (np.rint(x[:, 0, 0, 0] * 255) < 10).astype(int))
    assert np.array_equal(drawn(one), balanced_order(split.labels, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="shuffle"):
        next(data.batches(split, 16, shuffle=False, balance=True))


def test_balanced_three_classes_and_one_class():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    idx = balanced_order(labels, np.random.default_rng(0))
    for _ in range(9):
        idx = np.concatenate([idx, balanced_order(labels, np.random.default_rng(len(idx)))])
    shares = np.bincount(labels[idx], minlength=3) / len(idx)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.05)
    one_class = balanced_order(np.zeros(400, int), np.random.default_rng(1))
    assert len(one_class) == 400 and one_class.min() >= 0 and one_class.max() < 400
    assert len(np.unique(one_class)) < 400  # with replacement: about 63% distinct
    assert len(balanced_order(np.zeros(0, int), np.random.default_rng(0))) == 0


def test_data_parallel_parts_of_a_balanced_batch_make_the_whole_batch():
    split = imbalanced_split(N=51)  # a last batch of 3: one image per part
    whole = [drawn([b]) for b in data.batches(split, 16, seed=9, balance=True)]
    parts = [[drawn([b]) for b in data.batches(split, 16, seed=9, balance=True, part=(r, 3))]
             for r in range(3)]  # fmt: skip
    assert len(whole) == 4 and all(len(p) == 4 for p in parts)
    for step, batch in enumerate(whole):
        assert np.array_equal(np.concatenate([p[step] for p in parts]), batch)


class StopAt:
    """SIGTERM to this process after step `step` of epoch `epoch`."""

    def __init__(self, epoch, step):
        self.at, self.epoch = (epoch, step), None

    def on_epoch_begin(self, epoch, model):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs):
        if (self.epoch, step) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def tiny_run(split, balance, checkpoint=None, resume=False, callbacks=()):
    L = minicnn.layers
    model = minicnn.Sequential(
        [L.Conv2D(1, 2, 3, padding="same", rng=0), L.ReLU(), L.Flatten(), L.Dense(32, 1, rng=1)],
        input_shape=(1, 4, 4), output="sigmoid",
    )  # fmt: skip
    opt = minicnn.Adam(model.parameters(), lr=1e-2)
    fit = dict(epochs=2, batch_size=16, seed=4, balance=balance, progress=False, print_fn=None)
    history = minicnn.fit(model, minicnn.BinaryCrossEntropy(), opt, split, None,
                          checkpoint=checkpoint, resume=resume, callbacks=list(callbacks),
                          **fit)  # fmt: skip
    return model, history


def test_fit_balance_trains_on_the_balanced_draws_and_resumes_bit_for_bit(tmp_path):
    split = imbalanced_split(N=64, positives=8)
    plain, _ = tiny_run(split, balance=False)
    full, history = tiny_run(split, balance=True, checkpoint=str(tmp_path / "full.npz"))
    assert not all(np.array_equal(a.data, b.data)
                   for a, b in zip(plain.parameters(), full.parameters()))  # fmt: skip
    with pytest.raises(TrainingInterrupted):
        tiny_run(split, True, str(tmp_path / "cut.npz"), callbacks=[StopAt(2, 2)])
    resumed, again = tiny_run(split, True, str(tmp_path / "cut.npz"), resume=True)
    assert all(np.array_equal(a.data, b.data)
               for a, b in zip(full.parameters(), resumed.parameters()))  # fmt: skip
    assert [r["train_loss"] for r in again] == [r["train_loss"] for r in history]
