"""The fast engine (minicnn/fast/) computes what the reference layers compute.

Every forward output, every parameter gradient and the input gradient of the fast engine
are compared with the reference engine (`model.fast = False`), which the gradient checks
hold to finite differences.

- float64: the two engines add the same products in different orders (chunks, threads),
  or (Winograd F(2x2, 3x3), fast/winograd.py) add and subtract inputs before the
  products: either way they agree to a norm-wise relative error of at most 1e-12.
- float32: rounding alone moves each array by about 1e-7 norm-wise. A ReLU or max-pool
  near-tie decided the other way (a pre-activation within rounding of 0, or two window
  values within rounding of each other) moves one gradient entry, about 1e-3 of the
  array's norm, in one pass. The float32 test runs several random draws: a systematic
  error is present in every draw, so the MEDIAN error must stay below 1e-5; a tie shows up
  in a few draws only, so the WORST draw may reach 1e-2 but not more.
"""

import numpy as np
import pytest

import minicnn
from minicnn.fast import conv as fast_conv
from minicnn.fast import winograd
from minicnn.gradcheck import rel_error
from minicnn.layers.nested import walk


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request, monkeypatch):
    """1 or 2 threads; with 2, every step is split, however small (the pieces under test)."""
    monkeypatch.setattr(minicnn.threads, "SPLIT_MIN_MACS", 0)
    before = minicnn.threads.get_num_threads()
    minicnn.threads.set_num_threads(request.param)
    yield request.param
    minicnn.threads.set_num_threads(before)


@pytest.fixture(params=["chunks", "tiny"])
def chunk(request, monkeypatch):
    """The default chunk size, or one so small that every image is a chunk of its own."""
    if request.param == "tiny":
        monkeypatch.setattr(fast_conv, "CHUNK_FLOATS", 1)
        monkeypatch.setattr(winograd, "TILE_FLOATS", 1)
    return request.param


@pytest.fixture(params=["shifted", "plain", "winograd"])
def layout(request, monkeypatch):
    """Stride 1 as shifted copies of padded planes (rows W + 2p wide), the plain im2col, or
    (3x3 kernels, stride 1) Winograd F(2x2, 3x3) whatever the number of input channels."""
    monkeypatch.setattr(fast_conv, "SHIFTED_MIN_WIDTH", 0 if request.param == "shifted" else 10**6)
    monkeypatch.setattr(winograd, "WINOGRAD", request.param == "winograd")
    monkeypatch.setattr(winograd, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "WINOGRAD_MIN_SIZE", 1)
    return request.param


def run(model, x, dout, fast, training=True):
    """Output, input gradient and parameter gradients of one forward/backward pass."""
    model.fast = fast
    out = model.forward(x, training=training)
    dx = model.backward(dout.astype(x.dtype), input_grad=True)
    return [out, dx] + [p.grad.copy() for p in model.parameters()]


def errors(model, x, dout, training=True):
    fast, ref = run(model, x, dout, True, training), run(model, x, dout, False, training)
    assert [a.shape for a in fast] == [b.shape for b in ref]
    return [rel_error(a, b) for a, b in zip(fast, ref)]


def convnet(kind, C, k, stride, padding, pool, pool_stride, seed):
    """A one-conv model of the kind the fast engine plans into a given step."""
    rng = np.random.default_rng(seed)
    if kind.startswith("bn"):  # Conv2D(bias=False) -> BatchNorm2D [-> ReLU [-> MaxPool2D]]
        conv = minicnn.Conv2D(C, 5, k, stride=stride, padding=padding, rng=rng, bias=False)
        bn = minicnn.BatchNorm2D(5)
        bn.gamma.data[:] = rng.uniform(0.5, 1.5, 5)
        bn.beta.data[:] = rng.standard_normal(5) * 0.1
        bn.running_mean[:] = rng.standard_normal(5) * 0.1
        bn.running_var[:] = rng.uniform(0.5, 2, 5)
        pool = [minicnn.MaxPool2D(pool, pool_stride)] if kind == "bn_block" else []
        relu = [] if kind == "bn" else [minicnn.ReLU()]
        return minicnn.Sequential([conv, bn] + relu + pool)
    conv = minicnn.Conv2D(C, 5, k, stride=stride, padding=padding, rng=rng)
    conv.b.data[:] = rng.standard_normal(5) * 0.1  # non-zero biases
    layers = {
        "block": [conv, minicnn.ReLU(), minicnn.MaxPool2D(pool, pool_stride)],
        "conv_relu": [conv, minicnn.ReLU()],
        "conv": [conv],
        "pool": [minicnn.MaxPool2D(pool, pool_stride)],
    }[kind]
    return minicnn.Sequential(layers)


CASES = [  # (C, H, W, k, stride, padding, pool, pool_stride)
    (3, 8, 8, 3, 1, "same", 2, 2),
    (2, 9, 7, 3, 1, 0, 2, 2),  # odd, non-square, no padding
    (3, 11, 10, 5, 1, 2, 3, 2),  # k=5, overlapping pool windows
    (2, 9, 13, 3, 2, 1, 2, 2),  # stride 2
    (4, 7, 8, 1, 1, 0, 3, 1),  # 1x1 kernel, pool stride 1
    (1, 10, 9, 5, 2, 2, 2, 1),  # stride 2, k=5, overlapping pool
    (3, 6, 9, 3, 1, 1, 2, 2),
]


@pytest.mark.parametrize("kind", ["block", "conv_relu", "conv", "pool"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_fast_equals_reference_in_float64(case, kind, n_threads, chunk, layout):
    C, H, W, k, stride, padding, pool, pool_stride = case
    model = convnet(kind, C, k, stride, padding, pool, pool_stride, seed=1).astype(np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, C, H, W))
    dout = rng.standard_normal((5, *model.output_shape((C, H, W))))
    assert max(errors(model, x, dout)) <= 1e-12


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", ["bn_block", "bn_relu", "bn"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_batchnorm_block_equals_reference_in_float64(
    case, kind, training, n_threads, chunk, layout
):
    """Outputs, gradients (gamma, beta, W, x) and the running statistics after the step;
    with ReLU and pool, with ReLU, and BatchNorm alone after the convolution."""
    C, H, W, k, stride, padding, pool, pool_stride = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, C, H, W)) + 0.5
    results = []
    for fast in (True, False):
        model = convnet(kind, C, k, stride, padding, pool, pool_stride, seed=1).astype(np.float64)
        dout = np.random.default_rng(3).standard_normal((5, *model.output_shape((C, H, W))))
        arrays = run(model, x, dout, fast, training)
        results.append(arrays + [model[1].running_mean, model[1].running_var])
    assert len(results[0]) == 7 and results[0][-1].dtype == np.float64
    assert max(rel_error(a, b) for a, b in zip(*results)) <= 1e-12


@pytest.mark.parametrize("kind", ["block", "conv", "bn_block", "bn"])
@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: "x".join(map(str, c)))
def test_fast_equals_reference_in_float32(case, kind, chunk, layout):
    C, H, W, k, stride, padding, pool, pool_stride = case
    worst = []
    for seed in range(5):
        model = convnet(kind, C, k, stride, padding, pool, pool_stride, seed)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((6, C, H, W)).astype(np.float32)
        dout = rng.standard_normal((6, *model.output_shape((C, H, W))))
        worst.append(max(errors(model, x, dout)))
    assert np.median(worst) <= 1e-5, worst  # systematic: in every draw
    assert max(worst) <= 1e-2, worst  # a near-tie decided the other way: one entry


@pytest.mark.parametrize(
    "preset",
    [minicnn.models.paper, minicnn.models.paper13, minicnn.models.paper_bn,
     minicnn.models.paper_res],
    ids=["paper", "paper13", "paper_bn", "paper_res"],
)  # fmt: skip
@pytest.mark.parametrize(
    "optimizer, dtype, bound",
    [("SGD", np.float64, 1e-12), ("SGD", np.float32, 1e-5), ("Adam", np.float64, 1e-8)],
)
def test_paper_networks_train_alike_on_both_engines(preset, optimizer, dtype, bound, n_threads):
    """Three steps (lr 1e-3, dropout on) from the same weights: the same loss and weights.

    SGD moves each weight by lr * gradient, so the engines' rounding differences stay at
    rounding level. Adam moves each weight by about lr * gradient / |gradient|: for an
    entry whose gradient is near zero, a rounding difference becomes a move of up to lr.
    The Winograd convolutions (fast/winograd.py) round differently from the reference's
    im2col, so over three Adam steps the engines agree to 1e-9 in float64, and in float32
    only to 1e-3 (measured): a property of Adam, which the SGD cases show the engines do
    not share. So Adam is checked in float64 only, within 1e-8.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 3, 32, 32)).astype(dtype)
    y = rng.integers(0, 7, (3, 8))
    runs = []
    for fast in (True, False):
        model = preset(num_classes=7, image_size=32, seed=3).astype(dtype)
        model.fast = fast
        for p in model.parameters():
            p.data += dtype(0.01)  # non-zero biases
        step_fn = getattr(minicnn, optimizer)(model.parameters(), lr=1e-3)
        loss_fn = minicnn.SoftmaxCrossEntropy()
        losses = []
        for step in range(3):
            losses.append(loss_fn.forward(model.forward(x[step], training=True), y[step]))
            model.backward(loss_fn.backward())
            step_fn.step()
        runs.append((losses, [p.data.copy() for p in model.parameters()]))
    (losses_fast, weights_fast), (losses_ref, weights_ref) = runs
    np.testing.assert_allclose(losses_fast, losses_ref, rtol=bound)
    assert max(rel_error(a, b) for a, b in zip(weights_fast, weights_ref)) <= bound


def paper_res(dtype, seed=3, image_size=32):
    """paper_res with every BatchNorm's gamma, beta and statistics away from their start
    (a branch's last gamma starts at 0, which would leave the branch without gradient)."""
    model = minicnn.models.paper_res(num_classes=7, image_size=image_size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for _, layer in walk(model.layers):
        if isinstance(layer, minicnn.BatchNorm2D):
            F = layer.num_features
            layer.gamma.data[:] = rng.uniform(0.5, 1.5, F)
            layer.beta.data[:] = rng.normal(0, 0.2, F)
            layer.running_mean[:] = rng.normal(0, 0.2, F)
            layer.running_var[:] = rng.uniform(0.5, 2.0, F)
    return model.astype(dtype)


def res_run(model, x, dout, fast, training):
    """run() and every BatchNorm's running statistics after the step (inside blocks too)."""
    bns = [lay for _, lay in walk(model.layers) if isinstance(lay, minicnn.BatchNorm2D)]
    arrays = run(model, x, dout, fast, training)
    return arrays + [a.copy() for bn in bns for a in (bn.running_mean, bn.running_var)]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_paper_res_equals_reference_in_float64(training, n_threads, chunk):
    """Every step of paper_res at 32x32: the stem's ConvBNBlock, each block's branch (a
    ConvBNBlock with ReLU, on im2col or stride 2, then one without, on Winograd or im2col)
    and projection (a ConvBNBlock without ReLU, 1x1 stride 2), the sum and its ReLU (in
    place), the head."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 32, 32))
    dout = rng.standard_normal((4, 7))
    fast, ref = (res_run(paper_res(np.float64), x, dout, f, training) for f in (True, False))
    assert len(fast) == 2 + 44 + 2 * 14  # out, dx, 44 parameters, 14 BatchNorms' statistics
    assert min(np.abs(g).max() for g in ref[2:46]) > 0  # every layer gets a gradient
    assert max(rel_error(a, b) for a, b in zip(fast, ref)) <= 1e-12


def test_paper_res_equals_reference_in_float32(chunk):
    """The module's float32 bound over draws: the median within 1e-5, the worst 1e-2."""
    worst = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
        dout = rng.standard_normal((4, 7))
        fast, ref = (res_run(paper_res(np.float32, seed), x, dout, f, True) for f in (True, False))
        worst.append(max(rel_error(a, b) for a, b in zip(fast, ref)))
    assert np.median(worst) <= 1e-5, worst
    assert max(worst) <= 1e-2, worst


def test_the_plan_of_paper_res():
    """The stem and every convolution with its BatchNorm (with or without ReLU) are fused
    steps; each block's sum and ReLU is its FastResidual's own."""
    model = minicnn.models.paper_res()
    steps = minicnn.fast.plan(model.layers)

    def kinds(steps):
        return [(i, type(s).__name__, len(getattr(s, "layers", [s]))) for i, s in steps]

    blocks = [(i, "FastResidual", 1) for i in range(4, 9)]
    head = [(9, "GlobalAvgPool2D", 1), (10, "Dropout", 1), (11, "Dense", 1)]
    assert kinds(steps) == [(0, "ConvBNBlock", 4)] + blocks + head
    for _, block in steps[1:6]:
        assert kinds(block.branch) == [(0, "ConvBNBlock", 3), (3, "ConvBNBlock", 2)]
        assert [s.relu is None for _, s in block.branch] == [False, True]
        projection = block.block.shortcut is not None
        assert kinds(block.shortcut or []) == ([(0, "ConvBNBlock", 2)] if projection else [])
    assert [s.shortcut is not None for _, s in steps[1:6]] == [False, True, True, False, True]


def test_the_path_each_paper_res_convolution_takes():
    """At 64x64: Winograd for the 3x3 stride-1 convolutions with 16 or more input channels
    and outputs 8 or more wide; im2col (the strided kernel) for the stride-2 3x3 ones and the
    1x1 projections; im2col for the stem (3 channels) and on 4x4 maps."""
    model = minicnn.models.paper_res()
    paths = {p: lay for p, lay in walk(model.layers) if isinstance(lay, minicnn.Conv2D)}
    inputs, shape = {}, (3, 64, 64)  # the input shape of each layer; a block's lists take its own
    for i, layer in enumerate(model.layers):
        inputs[str(i)] = shape
        for name in ("branch", "shortcut"):
            inner = shape
            for j, lay in enumerate(getattr(layer, name, None) or []):
                inputs[f"{i}.{name}.{j}"] = inner
                inner = lay.output_shape(inner)
        shape = layer.output_shape(shape)
    kinds = {p: type(winograd.conv_matmul(c, (32, *inputs[p]))).__name__ for p, c in paths.items()}
    assert [p for p, k in kinds.items() if k == "WinogradConv"] == [
        "4.branch.0",
        "4.branch.3",
        "5.branch.3",
        "6.branch.3",
        "7.branch.0",
        "7.branch.3",
    ]
    strided = [p for p, c in paths.items() if c.stride == 2]
    assert strided == ["5.branch.0", "5.shortcut.0", "6.branch.0", "6.shortcut.0",
                       "8.branch.0", "8.shortcut.0"]  # fmt: skip
    assert all(kinds[p] == "ChunkedConv" for p in strided + ["0", "8.branch.3"])


def test_frozen_layers_between_trainable_ones(n_threads):
    """A frozen ConvBlock and FastConv above a trainable convolution, float64: the reference
    layers compute every gradient by the textbook rule, frozen or not (the same as unfrozen);
    the fast engine skips the frozen weights' gradients (their .grad keeps a NaN sentinel)
    and agrees on the output, the input gradient and every trainable gradient. A step then
    leaves the frozen weights as they were, on both engines."""
    rng = np.random.default_rng(4)

    def model():
        return minicnn.Sequential([
            minicnn.Conv2D(2, 3, 3, padding=1, rng=0), minicnn.ReLU(), minicnn.MaxPool2D(2),
            minicnn.Conv2D(3, 4, 3, padding=1, rng=1), minicnn.ReLU(),  # frozen ConvBlock
            minicnn.Conv2D(4, 4, 3, padding=1, rng=2),  # frozen FastConv
            minicnn.Flatten(), minicnn.Dense(64, 3, rng=3),
        ]).astype(np.float64)  # fmt: skip

    x, dout = rng.standard_normal((3, 2, 8, 8)), rng.standard_normal((3, 3))
    unfrozen = run(model(), x, dout, fast=False)
    for fast in (True, False):
        net = model()
        frozen = net[3].parameters() + net[5].parameters()
        for p in frozen:
            p.trainable = False
            p.grad = np.full_like(p.data, np.nan)
        arrays = run(net, x, dout, fast)
        for p, a, b in zip([None, None] + net.parameters(), arrays, unfrozen):
            if fast and p is not None and not p.trainable:
                assert np.isnan(a).all()  # skipped
            elif fast:
                assert rel_error(a, b) <= 1e-12
            else:
                np.testing.assert_array_equal(a, b)  # the textbook rule, frozen or not
        before = [p.data.copy() for p in frozen]
        minicnn.SGD(net.parameters(), lr=0.1, momentum=0.9).step()
        for p, b in zip(frozen, before):
            np.testing.assert_array_equal(p.data, b)


def test_a_layer_inside_a_fused_block_refuses_a_stale_backward():
    """After a fast forward, a fused ReLU has no values of its own: an error, not stale ones."""
    model = minicnn.Sequential(
        [minicnn.Conv2D(1, 2, 3, padding=1, rng=0), minicnn.ReLU(), minicnn.MaxPool2D(2)]
    )
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    model.fast = False
    model.forward(x)  # the reference engine: ReLU keeps its mask
    model.fast = True
    model.forward(2 * x)  # the fast engine computes the ReLU inside a ConvBlock
    with pytest.raises(RuntimeError, match=r"ReLU\(\)\.backward\(\) needs this layer's own"):
        model[1].backward(np.ones((2, 2, 4, 4), np.float32))


def test_a_layer_run_by_itself_uses_the_last_forward():
    model = minicnn.Sequential([minicnn.Flatten(), minicnn.Dense(4, 3, rng=0)])
    x = np.random.default_rng(1).standard_normal((2, 1, 2, 2)).astype(np.float32)
    model.forward(x)
    model.forward(3 * x)
    model[1].backward(np.ones((2, 3), np.float32))
    np.testing.assert_allclose(model[1].W.grad, (3 * x).reshape(2, 4).T @ np.ones((2, 3)))


def test_fuse_is_an_alias_of_fast():
    model = minicnn.Sequential([minicnn.ReLU()], fuse=False)
    assert model.fast is False and model.fuse is False
    model.fuse = True
    assert model.fast is True
    assert minicnn.Sequential([minicnn.ReLU()]).fast is True


def test_plan_picks_the_fast_twin_of_each_layer():
    layers = [
        minicnn.Conv2D(1, 2, 3),
        minicnn.MaxPool2D(2),
        minicnn.Conv2D(2, 2, 3),
        minicnn.ReLU(),
        minicnn.Conv2D(2, 2, 3, bias=False),
        minicnn.BatchNorm2D(2),
        minicnn.ReLU(),
        minicnn.MaxPool2D(2),
        minicnn.Conv2D(2, 2, 3),  # a bias before BatchNorm: not fused
        minicnn.BatchNorm2D(2),
        minicnn.Conv2D(2, 2, 3, bias=False),
        minicnn.BatchNorm2D(2),
        minicnn.Flatten(),
    ]
    steps = minicnn.fast.plan(layers)
    assert [type(s).__name__ for _, s in steps] == [
        "FastConv",
        "FastMaxPool",
        "ConvBlock",
        "ConvBNBlock",
        "FastConv",
        "BatchNorm2D",
        "ConvBNBlock",
        "Flatten",
    ]
    assert [i for i, _ in steps] == [0, 1, 2, 4, 8, 9, 10, 12]
    alone = steps[6][1]  # BatchNorm with no ReLU after it
    assert alone.layers == layers[10:12] and alone.relu is None and alone.pool is None
    with pytest.raises(ValueError, match="MaxPool2D only after a ReLU"):
        minicnn.fast.ConvBNBlock(layers[10], layers[11], None, minicnn.MaxPool2D(2))


def test_gradient_checks_run_on_the_reference_engine():
    model = minicnn.Sequential(
        [minicnn.Conv2D(1, 2, 3, padding=1, rng=0), minicnn.ReLU(), minicnn.Flatten()]
    )
    x = np.random.default_rng(0).standard_normal((2, 1, 3, 3))
    loss = minicnn.SoftmaxCrossEntropy()
    assert minicnn.gradcheck.check_model(model, loss, x, np.array([0, 5])) < 1e-6
    assert model.fast is True  # restored
    assert model[1].cache is not None  # the ReLU ran its own forward: the reference engine


def test_the_learners_worked_example_runs_and_agrees(capsys):
    """docs/learn.md's example, as a learner pastes it."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "learn.md").read_text()
    scope = {}
    exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), scope)
    printed = capsys.readouterr().out
    assert float(printed.split("gradient check:")[1].split()[0]) < 1e-6
    assert (
        max(np.abs(a - b).max() for a, b in zip(scope["grads"][True], scope["grads"][False]))
        < 1e-12
    )
