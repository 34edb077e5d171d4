"""Residual: gradients against finite differences, shapes, nesting; the fast engine on blocks
in tests/test_residual_fast.py."""

import numpy as np
import pytest

import minicnn
from minicnn import BatchNorm2D, Conv2D, Dropout, ReLU, Residual, Sequential
from minicnn.gradcheck import check_layer, check_model
from minicnn.layers.nested import leaves, walk

BOUND = 1e-6


def conv_bn(C, F, rng, stride=1, relu=True):
    """Conv2D(bias=False) -> BatchNorm2D [-> ReLU] with gamma and beta away from 1 and 0."""
    bn = BatchNorm2D(F)
    bn.gamma.data[:] = rng.uniform(0.5, 1.5, F)
    bn.beta.data[:] = 0.1 * rng.standard_normal(F)
    bn.running_mean[:] = 0.1 * rng.standard_normal(F)
    bn.running_var[:] = rng.uniform(0.5, 2.0, F)
    conv = Conv2D(C, F, 3, stride=stride, padding=1, rng=rng, bias=False)
    return [conv, bn] + ([ReLU()] if relu else [])


def block(C, F, stride=1, activation="relu", seed=0):
    """A basic block: conv-BN-ReLU-conv-BN, with a projection when the shape changes."""
    rng = np.random.default_rng(seed)
    branch = conv_bn(C, F, rng, stride) + conv_bn(F, F, rng, relu=False)
    shortcut = None
    if stride != 1 or C != F:
        shortcut = [Conv2D(C, F, 1, stride=stride, rng=rng, bias=False)]
        shortcut += conv_bn(F, F, rng, relu=False)[1:]  # its BatchNorm
    return Residual(branch, shortcut, activation=activation)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize(
    "C, F, stride",
    [(3, 3, 1), (2, 4, 1), (3, 4, 2)],
    ids=["identity", "projection", "projection-stride2"],
)
def test_block_gradients(C, F, stride, activation, training):
    layer = block(C, F, stride, activation, seed=1)
    x = np.random.default_rng(2).standard_normal((3, C, 6, 7))
    errors = check_layer(layer, x, training=training, details=True)
    assert len(errors) == 1 + len(layer.parameters())  # x, the branch's and the shortcut's
    assert max(errors.values()) < BOUND


def test_dropout_and_a_block_inside_the_branch():
    rng = np.random.default_rng(3)
    inner = Residual([Conv2D(3, 3, 3, padding=1, rng=rng), Dropout(0.3, rng=4)])
    outer = Residual([inner, ReLU(), Conv2D(3, 3, 1, rng=rng)], activation=None)
    assert [p for p, _ in walk([outer])] == [
        "0",
        "0.branch.0",
        "0.branch.0.branch.0",
        "0.branch.0.branch.1",
        "0.branch.1",
        "0.branch.2",
    ]
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 5))
    assert check_layer(outer, x, training=True) < BOUND  # the dropout mask is replayed


def test_the_sum_sends_the_same_gradient_down_both_paths():
    # identity shortcut, no activation: out = x + 2x (a 1x1 conv of weight 2), so dx = 3 dout
    conv = Conv2D(1, 1, 1, bias=False)
    conv.W.data[:] = 2.0
    layer = Residual([conv], activation=None)
    x = np.arange(8.0).reshape(1, 1, 2, 4)
    np.testing.assert_array_equal(layer.forward(x), 3 * x)
    dout = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dout), 3 * dout)
    assert conv.W.grad.item() == x.sum()
    relu = Residual([conv])  # with ReLU after the sum: no gradient where the sum is negative
    out = relu.forward(-x)
    assert not out.any() and not relu.backward(dout).any()


def test_input_grad_false_skips_dx_but_fills_every_parameter_gradient():
    layer = block(3, 4, stride=2).astype(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    dout = np.random.default_rng(1).standard_normal((2, 4, 3, 3))
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    grads = [p.grad.copy() for p in layer.parameters()]
    layer.forward(x, training=True)
    assert layer.backward(dout, input_grad=False) is None and dx.shape == x.shape
    for p, g in zip(layer.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)


def test_shape_mismatch_names_both_shapes_and_the_block():
    # known at construction: channels and strides do not depend on the image size
    with pytest.raises(minicnn.ShapeError) as err:
        Residual([Conv2D(4, 8, 3, stride=2, padding=1)])
    message = str(err.value)
    assert "Residual(1-layer branch + identity)" in message
    assert "(8, 32, 32)" in message and "(4, 64, 64)" in message
    shapes = r"branch gives \(8, 32, 32\) but the shortcut gives \(8, 64, 64\)"
    with pytest.raises(minicnn.ShapeError, match=shapes):
        Residual([Conv2D(4, 8, 3, stride=2, padding=1)], [Conv2D(4, 8, 1)])
    # unknown until an input comes: the first forward says it, before any arithmetic
    late = Residual([ReLU()], shortcut=[minicnn.MaxPool2D(2)])
    with pytest.raises(minicnn.ShapeError) as err:
        late.forward(np.ones((1, 2, 4, 4)))
    assert "branch gives (2, 4, 4) but the shortcut gives (2, 2, 2)" in str(err.value)
    # in a model with an input shape: at build, naming the model's layer
    with pytest.raises(minicnn.ShapeError) as err:
        Sequential([Conv2D(3, 2, 3), late], input_shape=(3, 6, 6))
    assert "layer #1 Residual(1-layer branch + 1-layer shortcut)" in str(err.value)
    # a layer inside that refuses its input is named with its place in the block
    with pytest.raises(minicnn.ShapeError, match=r"branch layer #1 Conv2D\(5->2, 3x3\)"):
        Residual([Conv2D(2, 2, 3, padding=1), Conv2D(5, 2, 3, padding=1)]).output_shape((2, 6, 6))
    with pytest.raises(ValueError, match="activation must be"):
        Residual([ReLU()], activation="tanh")
    with pytest.raises(ValueError, match="one layer or more"):
        Residual([])


def test_config_children_and_a_sequential_branch():
    b = block(2, 4, stride=2)
    assert Residual.CHILDREN == ("branch", "shortcut")
    assert b.config() == {"activation": "relu"}
    again = Residual(**b.config(), branch=b.branch, shortcut=b.shortcut)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(again.forward(x), b.forward(x))
    seq = Residual(Sequential(b.branch), Sequential(b.shortcut), activation=None)
    assert seq.branch == b.branch and seq.shortcut == b.shortcut
    np.testing.assert_array_equal(np.maximum(seq.forward(x), 0), b.forward(x))


def small_net(seed=0, dropout=0.0, activation="relu"):
    """stem -> identity block -> stride-2 projection block -> GAP -> dropout -> dense."""
    rng = np.random.default_rng(seed)
    blocks = [block(4, 4, seed=seed + 1, activation=activation),
              block(4, 6, stride=2, seed=seed + 2, activation=activation)]  # fmt: skip
    return Sequential(
        conv_bn(3, 4, rng)
        + blocks
        + [minicnn.GlobalAvgPool2D(), Dropout(dropout, rng=rng), minicnn.Dense(6, 5, rng=rng)],
        input_shape=(3, 8, 8),
    )


def test_a_model_of_blocks_parameters_freeze_dtype_and_summary():
    model = small_net()
    params = model.parameters()
    assert len(params) == 3 + 6 + 9 + 2  # stem, blocks (6 and 9 arrays), dense: once each
    block = model[4]  # in walk order: branch, then shortcut
    assert params[9:18] == [p for lay in block.branch + block.shortcut for p in lay.parameters()]
    assert model.head_index() == 7
    model.freeze(upto=4)  # the stem and the first block: every layer inside it
    assert model.frozen() == [0, 1, 3]
    assert not any(p.trainable for p in model[3].parameters())
    assert all(p.trainable for p in model[4].parameters())
    model.unfreeze()
    assert model.frozen() == []
    model.astype(np.float64)
    for layer in leaves(model.layers):
        for p in layer.parameters():
            assert p.data.dtype == np.float64
        if isinstance(layer, BatchNorm2D):
            assert layer.running_var.dtype == np.float64
    s = model.summary(print_fn=None)
    paths = [r["path"] for r in s.rows]
    assert paths[3:6] == ["3", "3.branch.0", "3.branch.1"]
    assert "4.shortcut.1" in paths and "4.shortcut.0" in s
    row = s.rows[paths.index("4")]
    inside = [r for r in s.rows if r["path"].startswith("4.")]
    assert row["macs"] == sum(r["macs"] for r in inside) == model[4].macs((4, 8, 8))
    # out (6, 4, 4): two 3x3 convs, a 1x1 conv, three BatchNorms (one per value)
    assert row["macs"] == 6 * 16 * (4 * 9 + 6 * 9 + 4 + 3)
    assert row["params"] == sum(r["params"] for r in inside) == 6 * 4 * 9 + 6 * 6 * 9 + 24 + 3 * 12
    assert row["activations"] == 6 * 16 * (1 + len(inside))  # its output and its layers'
    assert s.totals["macs"] == sum(r["macs"] for r in s.rows if r["depth"] == 0)
    assert s.totals["params"] == sum(p.size for p in model.parameters())


def test_model_gradients_through_blocks_in_training():
    model = small_net(seed=3, dropout=0.25)
    x = np.random.default_rng(4).standard_normal((4, 3, 8, 8))
    errors = check_model(
        model, minicnn.SoftmaxCrossEntropy(), x, np.array([0, 4, 2, 1]), training=True,
        max_checks=8, details=True,
    )  # fmt: skip
    assert len(errors) == 1 + len(model.parameters())
    assert max(errors.values()) < BOUND


def test_batchnorm_inside_a_branch_trains_and_evaluates():
    b = block(3, 3, seed=2)
    bn = b.branch[1]
    before = bn.running_mean.copy()
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32) + 1
    train = b.forward(x, training=True)
    assert not np.allclose(bn.running_mean, before)  # training moved the statistics
    moved = bn.running_mean.copy()
    evaluation = b.forward(x)
    np.testing.assert_array_equal(bn.running_mean, moved)  # evaluation leaves them
    assert not np.allclose(train, evaluation)


def test_transfer_copies_the_layers_inside_blocks():
    source = small_net(seed=8, dropout=0.5)
    model = minicnn.transfer(source, num_classes=3, seed=1)
    assert model.frozen() == [0, 1, 3, 4] and model.head_index() == 7
    for (path, a), (again, b) in zip(walk(source.layers[:-1]), walk(model.layers[:-1])):
        assert path == again and type(a) is type(b) and a is not b
        for p, q in zip(a.parameters(), b.parameters()):
            assert p is not q
            np.testing.assert_array_equal(p.data, q.data)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    features = [Sequential(m.layers[:-1]).forward(x) for m in (source, model)]
    np.testing.assert_array_equal(*features)
    assert model.output_shape((3, 8, 8)) == (3,)
