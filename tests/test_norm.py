"""BatchNorm2D / BatchNorm1D, AvgPool2D / GlobalAvgPool2D: gradient checks in float64 and
values computed by hand with the textbook formulas (PyTorch's definitions). AvgPool2D's
gradient checks sit with MaxPool2D's in test_gradcheck.py."""

import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import check_layer, check_model

BOUND = 1e-6


def randomised(layer, seed=1):
    """gamma and beta away from 1 and 0, so their gradients and roles are exercised."""
    rng = np.random.default_rng(seed)
    layer.gamma.data = rng.uniform(0.5, 1.5, layer.gamma.shape)
    layer.beta.data = rng.standard_normal(layer.beta.shape)
    return layer


# ----------------------------------------------------------------------------- BatchNorm


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "layer, shape",
    [
        (lambda: minicnn.BatchNorm2D(3), (4, 3, 5, 6)),
        (lambda: minicnn.BatchNorm2D(2), (1, 2, 3, 3)),  # one image: the maps give the stats
        (lambda: minicnn.BatchNorm1D(5), (6, 5)),
        (lambda: minicnn.BatchNorm1D(3), (3, 3)),  # (with 2, xhat is +-1 whatever x is)
    ],
    ids=["2d", "2d-one-image", "1d", "1d-three"],
)
def test_batchnorm_gradcheck(layer, shape, training):
    layer = randomised(layer())
    layer.running_mean[:] = [0.3, -0.2, 0.1, 0.0, 0.5][: layer.num_features]
    layer.running_var[:] = [0.5, 2.0, 1.5, 1.0, 0.7][: layer.num_features]
    x = np.random.default_rng(5).standard_normal(shape) * 2 + 0.5  # not check_layer's R
    errors = check_layer(layer, x, training=training, details=True)
    assert set(errors) == {"x", "param0", "param1"}
    assert max(errors.values()) < BOUND


def test_batchnorm2d_by_hand():
    """A 2x2x1x2 batch: channel 0 holds 1, 3, 5, 7 and channel 1 holds 2, 2, 4, 8."""
    x = np.array([[[[1.0, 3.0]], [[2.0, 2.0]]], [[[5.0, 7.0]], [[4.0, 8.0]]]])  # (2, 2, 1, 2)
    bn = minicnn.BatchNorm2D(2, momentum=0.1, eps=1e-5)
    bn.gamma.data = np.array([2.0, 0.5])
    bn.beta.data = np.array([1.0, -1.0])
    out = bn.forward(x, training=True)
    # channel 0: mean 4, biased var (9 + 1 + 1 + 9) / 4 = 5, unbiased 20 / 3
    # channel 1: mean 4, biased var (4 + 4 + 0 + 16) / 4 = 6, unbiased 8
    xhat0 = (np.array([1.0, 3.0, 5.0, 7.0]) - 4) / np.sqrt(5 + 1e-5)
    xhat1 = (np.array([2.0, 2.0, 4.0, 8.0]) - 4) / np.sqrt(6 + 1e-5)
    np.testing.assert_allclose(out[:, 0].ravel(), 2 * xhat0 + 1, rtol=1e-12)
    np.testing.assert_allclose(out[:, 1].ravel(), 0.5 * xhat1 - 1, rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean, [0.9 * 0 + 0.1 * 4, 0.1 * 4], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var, [0.9 + 0.1 * 20 / 3, 0.9 + 0.1 * 8], rtol=1e-6)
    assert bn.running_mean.dtype == bn.running_var.dtype == np.float32

    # backward by the formula dx = gamma / std * (dout - mean(dout) - xhat * mean(dout * xhat))
    dout = np.array([[[[1.0, -2.0]], [[0.5, 0.0]]], [[[3.0, 1.0]], [[-1.0, 2.0]]]])
    dx = bn.backward(dout)
    d0 = dout[:, 0].ravel()
    expect0 = 2 / np.sqrt(5 + 1e-5) * (d0 - d0.mean() - xhat0 * (d0 * xhat0).mean())
    np.testing.assert_allclose(dx[:, 0].ravel(), expect0, rtol=1e-10)
    np.testing.assert_allclose(bn.beta.grad, [3.0, 1.5], rtol=1e-12)
    np.testing.assert_allclose(bn.gamma.grad[0], (d0 * xhat0).sum(), rtol=1e-12)

    # evaluation: the running statistics, not the batch's
    out = bn.forward(x, training=False)
    rm, rv = bn.running_mean.astype(float), bn.running_var.astype(float)
    expect = 2 * (x[:, 0] - rm[0]) / np.sqrt(rv[0] + 1e-5) + 1
    np.testing.assert_allclose(out[:, 0], expect, rtol=1e-12)
    np.testing.assert_allclose(bn.backward(dout)[:, 0], 2 / np.sqrt(rv[0] + 1e-5) * dout[:, 0])


def test_batchnorm1d_by_hand_and_momentum_over_steps():
    bn = minicnn.BatchNorm1D(1, momentum=0.5)
    for step, values in enumerate([[1.0, 3.0], [0.0, 4.0]]):
        out = bn.forward(np.array(values)[:, None], training=True)
        np.testing.assert_allclose(out.ravel(), [-1, 1], atol=1e-5)  # (x - mean) / std
    # mean: 0 -> 0.5*0 + 0.5*2 = 1 -> 0.5*1 + 0.5*2 = 1.5
    # var (unbiased 2 then 8): 1 -> 0.5 + 1 = 1.5 -> 0.75 + 4 = 4.75
    np.testing.assert_allclose(bn.running_mean, [1.5])
    np.testing.assert_allclose(bn.running_var, [4.75])


def test_batchnorm_evaluation_does_not_move_the_running_statistics():
    bn = minicnn.BatchNorm2D(3)
    bn.forward(np.random.default_rng(0).standard_normal((4, 3, 2, 2)), training=False)
    assert np.array_equal(bn.running_mean, np.zeros(3))
    assert np.array_equal(bn.running_var, np.ones(3))
    assert bn.running_mean.dtype == np.float32
    assert [p.shape for p in bn.parameters()] == [(3,), (3,)]
    assert np.array_equal(bn.gamma.data, np.ones(3)) and np.array_equal(bn.beta.data, np.zeros(3))


def test_batchnorm_refuses_one_value_per_channel_in_training():
    with pytest.raises(minicnn.ShapeError, match=r"BatchNorm1D\(4\) in training.*one value"):
        minicnn.BatchNorm1D(4).forward(np.ones((1, 4)), training=True)
    with pytest.raises(minicnn.ShapeError, match=r"BatchNorm2D\(2\) in training"):
        minicnn.BatchNorm2D(2).forward(np.ones((1, 2, 1, 1)), training=True)
    assert minicnn.BatchNorm1D(4).forward(np.ones((1, 4))).shape == (1, 4)  # evaluation is fine


def test_batchnorm_names_itself_on_bad_shapes():
    with pytest.raises(minicnn.ShapeError, match=r"BatchNorm2D\(3\) expects .* 3 channels"):
        minicnn.BatchNorm2D(3).forward(np.ones((2, 4, 5, 5)))
    with pytest.raises(minicnn.ShapeError, match=r"BatchNorm1D\(3\) expects"):
        minicnn.BatchNorm1D(3).forward(np.ones((2, 3, 1, 1)))
    with pytest.raises(minicnn.ShapeError, match=r"BatchNorm2D\(8\)"):
        minicnn.Sequential([minicnn.Conv2D(3, 4, 3), minicnn.BatchNorm2D(8)], input_shape=(3, 8, 8))
    with pytest.raises(RuntimeError, match=r"BatchNorm2D\(3\).backward\(\) needs"):
        minicnn.BatchNorm2D(3).backward(np.ones((2, 3, 4, 4)))


def test_batchnorm_keeps_float32():
    bn = minicnn.BatchNorm2D(2)
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4)).astype(np.float32)
    assert bn.forward(x, training=True).dtype == np.float32
    assert bn.backward(np.ones_like(x)).dtype == np.float32
    assert bn.gamma.grad.dtype == np.float32


# ----------------------------------------------------------------------------- pooling


def test_avgpool_by_hand():
    x = np.arange(25.0).reshape(1, 1, 5, 5)  # x[h, w] = 5h + w
    out = minicnn.AvgPool2D(2).forward(x)  # floor rule: 2x2 windows, row 4 and column 4 dropped
    np.testing.assert_array_equal(out[0, 0], [[3.0, 5.0], [13.0, 15.0]])
    out = minicnn.AvgPool2D(3, stride=2).forward(x)  # the mean of a window is its centre here
    np.testing.assert_array_equal(out[0, 0], [[6.0, 8.0], [16.0, 18.0]])
    pool = minicnn.AvgPool2D(2, stride=1)
    pool.forward(np.zeros((1, 1, 3, 3)))
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    # each input gets 1/4 from every window it belongs to: the corners one, the centre four
    np.testing.assert_array_equal(dx[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    assert minicnn.AvgPool2D(2).config() == {"pool_size": 2, "stride": 2}
    with pytest.raises(minicnn.ShapeError, match=r"AvgPool2D\(4, stride=4\): input 3x3"):
        minicnn.AvgPool2D(4).output_shape((1, 3, 3))


def test_global_avgpool_by_hand_and_gradcheck():
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    gap = minicnn.GlobalAvgPool2D()
    np.testing.assert_array_equal(gap.forward(x), x.reshape(2, 3, 4).mean(axis=2))
    assert gap.output_shape((3, 5, 7)) == (3,)
    dx = gap.backward(np.array([[4.0, 8.0, 0.0], [1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(dx[0, 1], np.full((2, 2), 2.0))
    dx[0, 0, 0, 0] = 99  # a real array, not a read-only broadcast view
    x = np.random.default_rng(0).random((2, 3, 4, 5))
    assert check_layer(minicnn.GlobalAvgPool2D(), x) < BOUND


# ----------------------------------------------------------------------------- a network


@pytest.mark.parametrize("fast", [False, True])
def test_conv_bn_relu_pool_gap_network_gradcheck(fast):
    """BatchNorm in training mode inside a model, on both engines (float64)."""
    rng = np.random.default_rng(0)
    layers = [
        minicnn.Conv2D(2, 3, 3, padding="same", rng=1, bias=False),
        randomised(minicnn.BatchNorm2D(3)),
        minicnn.ReLU(),
        minicnn.MaxPool2D(2),
        minicnn.AvgPool2D(2, stride=1),
        minicnn.GlobalAvgPool2D(),
        minicnn.Dense(3, 4, rng=2),
        randomised(minicnn.BatchNorm1D(4), seed=3),
        minicnn.ReLU(),
        minicnn.Dense(4, 3, rng=4, init="glorot"),
    ]
    model = minicnn.Sequential(layers, input_shape=(2, 6, 6), fast=fast)
    x = rng.standard_normal((4, 2, 6, 6))
    errors = check_model(
        model, minicnn.SoftmaxCrossEntropy(label_smoothing=0.1), x, np.array([0, 1, 2, 1]),
        training=True, max_checks=20, fast=fast, details=True,
    )  # fmt: skip
    # The bias of the Dense before BatchNorm1D has no effect in training (BatchNorm subtracts
    # the batch mean): its gradient is 0 both ways, and their relative error is meaningless.
    bias = f"param{model.parameters().index(layers[6].b)}"
    assert np.abs(layers[6].b.grad).max() < 1e-12
    del errors[bias]
    assert len(errors) == len(model.parameters())  # x and every other parameter
    assert max(errors.values()) < BOUND


def test_a_frozen_batchnorm_computes_its_gradients_and_is_never_updated():
    """Frozen: the running statistics in training; backward still gives the textbook
    gradients of gamma and beta, and the optimizers leave both as they are."""
    bn = randomised(minicnn.BatchNorm2D(3))
    bn.running_mean[:], bn.running_var[:] = [0.1, -0.2, 0.3], [0.5, 2.0, 1.5]
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2))
    for p in bn.parameters():
        p.trainable = False
    before = [p.data.copy() for p in bn.parameters()]
    out = bn.forward(x, training=True)
    np.testing.assert_allclose(out, bn.forward(x, training=False), rtol=1e-12)
    bn.forward(x, training=True)
    bn.backward(dout)
    std = np.sqrt(bn.running_var.astype(float) + 1e-5).reshape(1, 3, 1, 1)
    xhat = (x - bn.running_mean.astype(float).reshape(1, 3, 1, 1)) / std
    np.testing.assert_allclose(bn.beta.grad, dout.sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(bn.gamma.grad, (dout * xhat).sum(axis=(0, 2, 3)), rtol=1e-12)
    for optimizer in (minicnn.SGD(bn.parameters(), lr=0.1, momentum=0.9),
                      minicnn.Adam(bn.parameters(), lr=0.1)):  # fmt: skip
        optimizer.step()
    for p, b in zip(bn.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


def test_batchnorm_moments_and_sums_are_the_textbook_ones():
    bn = minicnn.BatchNorm1D(2)
    x = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])
    mean, var, m = bn.moments(x)
    np.testing.assert_allclose(mean, [3.0, 4.0])
    np.testing.assert_allclose(var, [8 / 3, 8.0])
    assert m == 3
    dbeta, dgamma = bn.sums(np.ones((3, 2)), x)
    np.testing.assert_allclose(dbeta, [3.0, 3.0])
    np.testing.assert_allclose(dgamma, [9.0, 12.0])
    assert minicnn.layers.norm.batchnorms([minicnn.ReLU(), bn]) == [bn]
