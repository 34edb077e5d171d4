"""Residual on the fast engine (minicnn/fast/residual.py) equals the reference layer.

The blocks of tests/test_residual.py, run as fast steps: outputs, every gradient and the
running statistics held to the reference engine (float64 within 1e-12; float32 within
tests/test_fast.py's bound), at 1 and 2 threads and with chunks of one image, in training
and in evaluation, frozen and with synced BatchNorm; and the promises of the steps that
let a block write its sum in place.
"""

import numpy as np
import pytest
from test_residual import conv_bn, small_net

import minicnn
from minicnn import BatchNorm2D, Conv2D, Dropout, ReLU, Residual, Sequential, fast
from minicnn.fast import conv as fast_conv
from minicnn.fast import residual, winograd
from minicnn.gradcheck import rel_error
from minicnn.layers.nested import leaves


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request, monkeypatch):
    """1 or 2 threads; with 2, every step is split, however small (the pieces under test)."""
    monkeypatch.setattr(minicnn.threads, "SPLIT_MIN_MACS", 0)
    before = minicnn.threads.get_num_threads()
    minicnn.threads.set_num_threads(request.param)
    yield request.param
    minicnn.threads.set_num_threads(before)


def run(model, x, dout, fast, training=True):
    """Output, input gradient, parameter gradients and every BatchNorm's running statistics
    after one forward/backward pass on one engine."""
    model.fast = fast
    out = model.forward(x, training=training)
    dx = model.backward(dout.astype(x.dtype), input_grad=True)
    return [out, dx] + [p.grad.copy() for p in model.parameters()] + statistics(model)


def statistics(model):
    """Every BatchNorm2D's running mean and variance (copies), in walk order."""
    bns = [lay for lay in leaves(model.layers) if isinstance(lay, BatchNorm2D)]
    return [a.copy() for bn in bns for a in (bn.running_mean, bn.running_var)]


@pytest.fixture(params=["chunks", "tiny"])
def chunk(request, monkeypatch):
    if request.param == "tiny":  # every image a chunk of its own
        monkeypatch.setattr(fast_conv, "CHUNK_FLOATS", 1)
        monkeypatch.setattr(winograd, "TILE_FLOATS", 1)
    return request.param


@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_fast_engine_equals_the_reference_on_blocks(training, activation, chunk, n_threads):
    """Every step of small_net, the sum with and without ReLU after it: outputs, every
    gradient and the running statistics after the step, float64 within 1e-12."""
    x = np.random.default_rng(6).standard_normal((5, 3, 8, 8))
    dout = np.random.default_rng(7).standard_normal((5, 5))
    models = [small_net(seed=5, activation=activation).astype(np.float64) for _ in range(2)]
    start = statistics(models[0])
    fast, ref = run(models[0], x, dout, True, training), run(models[1], x, dout, False, training)
    n = len(models[0].parameters())
    assert len(fast) == 2 + n + 2 * 6  # out, dx, the parameters, 6 BatchNorms' statistics
    assert min(np.abs(g).max() for g in ref[2 : 2 + n]) > 0  # every layer gets a gradient
    moved = [not np.array_equal(a, b) for a, b in zip(fast[-12:], start)]
    assert moved == [training] * 12  # training moves every running statistic, evaluation none
    assert max(rel_error(a, b) for a, b in zip(fast, ref)) < 1e-12
    model = models[0]  # the last forward again, with no input gradient this time
    model.forward(x, training=training)
    assert model.backward(dout) is None
    for p, g in zip(model.parameters(), fast[2:]):  # the same parameter gradients
        np.testing.assert_allclose(p.grad, g, rtol=1e-12, atol=1e-15)


def test_the_fast_plan_runs_a_branch_as_fused_steps():
    model = small_net()
    steps = fast.plan(model.layers)
    assert [type(s).__name__ for _, s in steps] == [
        "ConvBNBlock", "FastResidual", "FastResidual", "GlobalAvgPool2D", "Dropout", "Dense"
    ]  # fmt: skip
    projection = steps[2][1]
    assert [type(s).__name__ for _, s in projection.branch] == ["ConvBNBlock", "ConvBNBlock"]
    assert [(i, len(s.layers)) for i, s in projection.branch] == [(0, 3), (3, 2)]
    assert projection.branch[0][1].relu is not None and projection.branch[1][1].relu is None
    assert [type(s).__name__ for _, s in projection.shortcut] == ["ConvBNBlock"]
    assert projection.shortcut[0][1].layers == model[4].shortcut  # the 1x1 conv and its BN
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    model.forward(x, training=True)  # fast: the fused branch conv keeps no values of its own
    with pytest.raises(RuntimeError, match="needs this layer's own forward"):
        model[4].branch[0].backward(np.ones((2, 6, 4, 4), np.float32))


def test_fast_engine_equals_the_reference_on_blocks_in_float32(chunk):
    """tests/test_fast.py's float32 bound over draws: the median within 1e-5, the worst 1e-2."""
    worst = []
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((4, 3, 8, 8)).astype(np.float32)
        dout = np.random.default_rng(seed + 10).standard_normal((4, 5))
        fast, ref = (run(small_net(seed), x, dout, f) for f in (True, False))
        assert fast[0].dtype == np.float32
        worst.append(max(rel_error(a, b) for a, b in zip(fast, ref)))
    assert np.median(worst) <= 1e-5, worst
    assert max(worst) <= 1e-2, worst


def spy_on_outputs(step):
    """Record what step.forward returns, in a list."""
    seen, forward = [], step.forward

    def recorded(x, training=False):
        seen.append(forward(x, training))
        return seen[-1]

    step.forward = recorded
    return seen


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_the_sum_goes_into_the_branchs_output_only_when_nothing_else_reads_it(training):
    """A branch ending in Conv2D -> BatchNorm2D: out is that step's array, no new one. A
    branch ending in ReLU (a ConvBNBlock that reads its mask back from its output): a new
    array, and the step's own output is left as it was."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    for relu, in_place in ((False, True), (True, False)):
        layer = Residual(conv_bn(3, 3, rng) + conv_bn(3, 3, rng, relu=relu))
        (_, step), = fast.plan([layer.astype(np.float64)])  # fmt: skip
        last = step.branch[-1][1]
        assert type(last).__name__ == "ConvBNBlock" and (last.relu is None) is in_place
        assert residual.writable_output(last) is in_place
        seen = spy_on_outputs(last)
        out = step.forward(x, training)
        kept = seen[0].copy()
        assert (out is seen[0]) is in_place
        if not in_place:
            np.testing.assert_array_equal(seen[0], kept)
        assert rel_error(out, layer.forward(x, training)) < 1e-12  # and the layer's output


KINDS = {  # one layer list per fast step, and whether the block may write into its output
    "FastConv": (lambda rng: [Conv2D(3, 4, 3, padding=1, rng=rng)], True),
    "ConvBNBlock": (lambda rng: conv_bn(3, 4, rng, relu=False), True),
    "ConvBNBlock+ReLU": (lambda rng: conv_bn(3, 4, rng), False),
    "ConvBlock": (lambda rng: [Conv2D(3, 4, 3, padding=1, rng=rng), ReLU()], False),
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_promises_that_make_writing_in_place_safe(kind, training):
    """writable_output(step): its backward does not read its output back (NaN written over
    it changes no gradient); with ReLU it does, so such steps are not writable. And
    new_input_grad(step): each backward returns a new dx that no later call touches."""
    make, writable = KINDS[kind]
    layers = [lay.astype(np.float64) for lay in make(np.random.default_rng(1))]
    (_, step), = fast.plan(layers)  # fmt: skip
    assert type(step).__name__ == kind.split("+")[0] and residual.new_input_grad(step)
    assert residual.writable_output(step) is writable
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((3, 3, 6, 6)), rng.standard_normal((3, 4, 6, 6))
    grads = []
    for scribble in (False, True):
        out = step.forward(x, training)
        if scribble:
            out[:] = np.nan
        grads.append([step.backward(dout)] + [p.grad.copy() for p in step.parameters()])
    same = all(np.array_equal(a, b) for a, b in zip(*grads))
    assert same is writable  # ReLU's backward reads the NaN back
    first = step.backward(dout)
    kept = first.copy()
    second = step.backward(dout)
    assert not np.shares_memory(first, second) and not np.shares_memory(first, x)
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_blocks_whose_steps_promise_nothing_get_new_arrays(training, n_threads):
    """Branches that start with Dropout (in evaluation its dx is its dout: with no
    activation, the caller's array) or end with it (in evaluation it returns x itself), and
    that end in a nested block (which keeps its output for its ReLU's backward): the fast
    engine equals the reference, and no block writes into the gradient it was given."""

    def model():
        rng = np.random.default_rng(3)
        return Sequential([
            Residual([Dropout(0.25, rng=1)] + conv_bn(3, 3, rng) + [Dropout(0.25, rng=2)]),
            Residual([ReLU(), Residual(conv_bn(3, 3, rng) + conv_bn(3, 3, rng, relu=False))]),
            Residual([Dropout(0.25, rng=4), Residual(conv_bn(3, 3, rng, relu=False))],
                     activation=None),
            minicnn.GlobalAvgPool2D(), minicnn.Dense(3, 2, rng=rng),
        ]).astype(np.float64)  # fmt: skip

    x = np.random.default_rng(4).standard_normal((3, 3, 5, 5))
    dout = np.random.default_rng(5).standard_normal((3, 2))
    plan = fast.plan(model().layers)
    assert not any(residual.writable_output(s.branch[-1][1]) for _, s in plan[:3])
    assert not any(residual.new_input_grad(s.branch[0][1]) for _, s in plan[:3])
    fast_run, ref = run(model(), x, dout, True, training), run(model(), x, dout, False, training)
    assert max(rel_error(a, b) for a, b in zip(fast_run, ref)) < 1e-12
    h = x
    for _, step in plan[:3]:
        h = step.forward(h, training)
        given = np.random.default_rng(6).standard_normal(h.shape)
        kept = given.copy()
        step.backward(given)
        np.testing.assert_array_equal(given, kept)


def test_frozen_layers_and_frozen_statistics_inside_blocks(n_threads):
    """Transfer learning's cases, in training, float64: the first block frozen whole (its
    BatchNorms normalise with their running statistics and keep them), the second block's
    last convolution frozen under a trainable BatchNorm, its shortcut's BatchNorm with
    frozen statistics. The fast engine skips the frozen weights' gradients (a NaN
    sentinel stays) and agrees with the reference on everything else."""

    def model():
        net = small_net(seed=6).astype(np.float64)
        net.freeze(upto=4)
        net.unfreeze(upto=3)  # the stem trains: block 3 is frozen between trainable layers
        net[4].branch[3].W.trainable = False
        net[4].shortcut[1].freeze_statistics()
        for p in net.parameters():
            if not p.trainable:
                p.grad = np.full_like(p.data, np.nan)
        return net

    x = np.random.default_rng(7).standard_normal((4, 3, 8, 8))
    dout = np.random.default_rng(8).standard_normal((4, 5))
    frozen_at_start = statistics(model())
    net = model()
    fast_run, ref = run(net, x, dout, True), run(model(), x, dout, False)
    trainable = [True, True] + [p.trainable for p in net.parameters()] + [True] * 12
    assert trainable.count(False) == 6 + 1  # block 3's two convs and two BNs; one conv
    for a, b, t in zip(fast_run, ref, trainable):
        if t:
            assert rel_error(a, b) < 1e-12
        else:
            assert np.isnan(a).all()  # skipped: the reference computes them anyway
    # BatchNorms in walk order: the stem's, block 3's two, block 4's two, its shortcut's
    for i, (a, b) in enumerate(zip(fast_run[-12:], frozen_at_start)):
        assert np.array_equal(a, b) == (i // 2 in (1, 2, 5)), i  # kept: frozen; else moved


def test_synced_batchnorm_inside_blocks_on_both_engines():
    """Data-parallel training's synced BatchNorm (minicnn.distributed.sync_batchnorm), with
    a stand-in for the ranks' sum (2 x: two ranks holding the same part): the fast engine's
    ConvBNBlocks, with ReLU and without, combine through the layers' moments and sums as
    the layers do. Each BatchNorm's gamma and beta gradients double (summed over the two
    ranks), the input gradient and the convolutions' are those of one process."""
    from minicnn import distributed

    x = np.random.default_rng(9).standard_normal((4, 3, 8, 8))
    dout = np.random.default_rng(10).standard_normal((4, 5))
    runs = {}
    for fast_engine, synced in ((True, False), (True, True), (False, True)):
        net = small_net(seed=7).astype(np.float64)
        if synced:
            assert len(distributed.sync_batchnorm(net, lambda v: 2 * v)) == 2 * 6
        runs[fast_engine, synced] = run(net, x, dout, fast_engine)
    bns = [lay for lay in leaves(net.layers) if isinstance(lay, BatchNorm2D)]
    in_bn = {id(p) for bn in bns for p in bn.parameters()}
    factor = [1, 1] + [2 if id(p) in in_bn else 1 for p in net.parameters()]  # out, dx, grads
    assert factor.count(2) == 2 * 6
    alone, synced, reference = runs[True, False], runs[True, True], runs[False, True]
    assert max(rel_error(a, b) for a, b in zip(synced, reference)) < 1e-12  # statistics too
    assert max(rel_error(a, k * b) for a, b, k in zip(synced, alone, factor)) < 1e-12
