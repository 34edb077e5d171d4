"""Inference at small batches on the fast engine: what it keeps from call to call is exact.

A model keeps the fast engine's plan from one call to the next, and in evaluation each
convolution step keeps its prepared weights (fast/memo.py); a step too small to split runs
on the calling thread (threads.SPLIT_MIN_MACS). Here: evaluation at batch 1, 2, 3 and 32,
on 1 and 2 threads, equals the reference engine within tests/test_fast.py's float32 bound,
call after call; a change of the model (a layer replaced, at any depth, a bias given, a
weight or a running statistic written in place) reaches the next call; the calling-thread path is
taken where the work is small, and gives the bits of one thread.
"""

import numpy as np
import pytest

import minicnn
from minicnn import threads
from minicnn.fast.memo import Memo
from minicnn.gradcheck import rel_error
from minicnn.layers.nested import leaves

BOUND = 1e-5  # tests/test_fast.py's float32 bound, norm-wise


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request):
    before = threads.get_num_threads()
    threads.set_num_threads(request.param)
    yield request.param
    threads.set_num_threads(before)


def network(preset, seed=0):
    """A preset (10 classes, 64x64) whose BatchNorms hold statistics and affine maps of their
    own, so that folding them changes the weights (paper_res's last gamma is 0 at first)."""
    model = getattr(minicnn.models, preset)(num_classes=10, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for bn in (lay for lay in leaves(model.layers) if isinstance(lay, minicnn.BatchNorm2D)):
        C = bn.num_features
        bn.gamma.data[:] = rng.uniform(0.5, 1.5, C)
        bn.beta.data[:] = rng.standard_normal(C) * 0.1
        bn.running_mean[:] = rng.standard_normal(C) * 0.1
        bn.running_var[:] = rng.uniform(0.5, 2, C)
    return model


def images(batch, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 3, 64, 64)).astype(np.float32)


def reference(model, x):
    model.fast = False
    try:
        return model.forward(x)
    finally:
        model.fast = True


def memos(model):
    """The Memo of every step of the model's fast plan that has one, inside blocks too."""
    steps, found = list(model._fast_plan[1]), []
    while steps:
        step = steps.pop()[1]
        steps += list(getattr(step, "branch", None) or []) + list(
            getattr(step, "shortcut", None) or []
        )
        if hasattr(step, "memo"):
            found.append(step.memo)
    return found


@pytest.mark.parametrize("batch", [1, 2, 3, 32])
@pytest.mark.parametrize("preset", ["paper", "paper_bn", "paper_res"])
def test_inference_equals_the_reference_call_after_call(preset, batch, n_threads):
    model, x = network(preset), images(batch)
    first = model.forward(x)
    again = model.forward(x)  # the kept plan and prepared weights
    np.testing.assert_array_equal(again, first)
    assert rel_error(first, reference(model, x)) <= BOUND
    if preset != "paper":  # folded BatchNorms and Winograd's U are kept, made once
        assert memos(model) and all(memo.made == 1 for memo in memos(model) if memo.made)


@pytest.mark.parametrize("preset", ["paper_bn", "paper_res"])
def test_a_change_written_in_place_reaches_the_next_call(preset):
    model, x = network(preset), images(2)
    model.forward(x)
    conv = next(lay for lay in leaves(model.layers) if isinstance(lay, minicnn.Conv2D))
    bn = next(lay for lay in leaves(model.layers) if isinstance(lay, minicnn.BatchNorm2D))
    last = next(lay for lay in reversed(leaves(model.layers)) if isinstance(lay, minicnn.Conv2D))
    changes = [
        lambda: conv.W.data.__imul__(1.5),  # an optimizer's step: in place
        lambda: bn.running_var.__setitem__(slice(None), 3.0),
        lambda: bn.gamma.data.__setitem__(0, -2.0),
        lambda: last.W.data.__setitem__((0, 0, 0, 0), 7.0),  # one value of the last layer
    ]
    for change in changes:
        made = sum(memo.made for memo in memos(model))
        change()
        out = model.forward(x)
        assert sum(memo.made for memo in memos(model)) == made + 1  # only that step again
        assert rel_error(out, reference(model, x)) <= BOUND


def test_training_keeps_no_prepared_weights():
    model, x = network("paper_res"), images(4)
    model.forward(x, training=True)
    assert memos(model) and all(memo.made == 0 for memo in memos(model))


def test_a_memo_makes_its_value_again_on_any_change():
    memo, made = Memo(), []

    def make():
        made.append(1)
        return len(made)

    a = np.arange(6, dtype=np.float32)
    assert memo.get("k", [a], make) == 1
    assert memo.get("k", [a.copy()], make) == 1  # equal values: kept
    for key, arrays in [
        ("other key", [a]),
        ("k", [a.astype(np.float64)]),  # same values, other dtype
        ("k", [a.reshape(2, 3)]),  # other shape
        ("k", [a, a]),  # another array
    ]:
        before = len(made)
        memo.get(key, arrays, make)
        assert len(made) == before + 1, (key, arrays)
    a[3] = np.nan  # NaN equals nothing: made on every call, never a stale value
    memo.get("k", [a], make)
    before = len(made)
    memo.get("k", [a], make)
    assert len(made) == before + 1


def test_the_plan_is_kept_until_a_layer_changes():
    model = minicnn.models.paper(num_classes=4, image_size=32, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.forward(x)
    steps = model._steps
    model.forward(x)
    assert model._steps is steps  # the same steps, not a new plan
    model.layers[0] = minicnn.Conv2D(3, 16, 3, padding="same", rng=np.random.default_rng(1))
    out = model.forward(x)
    assert model._steps is not steps and model._steps[0][1].conv is model.layers[0]
    assert rel_error(out, reference(model, x)) <= BOUND


def test_a_bias_given_to_a_convolution_fused_with_its_batchnorm_makes_a_new_plan():
    model, x = network("paper_bn"), images(2)
    model.forward(x)
    assert type(model._steps[0][1]).__name__ == "ConvBNBlock"
    model.layers[0].b = minicnn.Parameter(np.full(32, 0.5, np.float32))
    out = model.forward(x)
    assert type(model._steps[0][1]).__name__ == "FastConv"  # the bias is no longer beta's
    assert rel_error(out, reference(model, x)) <= BOUND


def test_a_layer_replaced_inside_a_residual_block_reaches_its_step():
    model, x = network("paper_res"), images(2)
    model.forward(x)
    block, step = model.layers[4], model._steps[1][1]
    old = step.branch
    block.branch[3] = minicnn.Conv2D(32, 32, 3, padding=1, rng=np.random.default_rng(2), bias=False)
    out = model.forward(x)
    assert model._steps[1][1] is step and step.branch is not old  # the block planned again
    assert step.branch[1][1].conv is block.branch[3]
    assert rel_error(out, reference(model, x)) <= BOUND


@pytest.mark.parametrize("batch, split, small", [(2, 0, 5), (32, 3, 2)])
def test_small_convolutions_run_on_the_calling_thread(batch, split, small):
    """paper at 64x64, 2 threads: at batch 32 its first three convolutions (57-151 M
    multiply-adds) are split, its last two (19 M and 5 M) are not; at batch 2 none is."""
    before = threads.get_num_threads()
    threads.set_num_threads(2)
    try:
        model, x = network("paper"), images(batch)
        counts = dict(threads.counts)
        out = model.forward(x)
        assert threads.counts["split"] - counts["split"] == split
        assert threads.counts["small"] - counts["small"] == small
    finally:
        threads.set_num_threads(before)
    assert rel_error(out, reference(model, x)) <= BOUND


@pytest.mark.parametrize("preset", ["paper", "paper_bn", "paper_res"])
def test_a_step_kept_whole_gives_the_bits_of_one_thread(preset, monkeypatch):
    """On 2 threads with every convolution kept whole, evaluation and a training step give
    exactly what 1 thread gives: the same chunks, the same sums (the elementwise passes
    still split write each value once)."""
    x, y = images(3), np.arange(3)
    before = threads.get_num_threads()
    results = []
    monkeypatch.setattr(threads, "SPLIT_MIN_MACS", 1 << 62)
    try:
        for n in (1, 2):
            threads.set_num_threads(n)
            model = network(preset)
            out = model.forward(x)
            loss = minicnn.SoftmaxCrossEntropy()
            loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward())
            results.append([out] + [p.grad.copy() for p in model.parameters()])
    finally:
        threads.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)
