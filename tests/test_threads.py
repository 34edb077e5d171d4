"""minicnn's own parallelism: pieces cover the work exactly once and change no result."""

import os

import numpy as np
import pytest

import minicnn
from minicnn import threads


@pytest.fixture
def n_threads(monkeypatch):
    """Sets the thread count; every step is split, however small (the pieces under test)."""
    monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 0)
    before = threads.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(before)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_parallel_for_covers_every_index_once(n_threads, n):
    n_threads(n)
    seen = np.zeros(101, dtype=int)

    def work(a, b):
        seen[a:b] += 1

    threads.parallel_for(work, 101)
    np.testing.assert_array_equal(seen, 1)


def test_one_and_two_threads_train_alike(n_threads):
    x = np.random.default_rng(0).standard_normal((6, 3, 64, 64)).astype(np.float32)
    y = np.arange(6) % 4
    results = []
    for n in (1, 2):
        n_threads(n)
        model = minicnn.models.paper13(num_classes=4, seed=1)
        loss = minicnn.SoftmaxCrossEntropy()
        value = loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
        results.append((value, [p.grad.copy() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for g1, g2 in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-6 * np.abs(g2).max())


def test_openblas_is_found_and_set_to_one_thread():
    if (
        not os.path.exists("/proc/self/maps")
        or "openblas" not in str(np.show_config(mode="dicts")).lower()
    ):
        pytest.skip("needs Linux and a NumPy built on OpenBLAS")
    assert threads.blas_libraries(), "NumPy's OpenBLAS should be visible in /proc/self/maps"
    assert threads.get_blas_threads() == 1  # minicnn's import set it
    try:
        assert threads.set_blas_threads(2) >= 1
        assert threads.get_blas_threads() == 2
    finally:
        threads.set_blas_threads(1)
    assert threads.get_blas_threads() == 1
