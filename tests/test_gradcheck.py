"""Every layer and loss against central finite differences in float64: error <= 1e-6."""

import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import check_layer, check_model

BOUND = 1e-6


def away_from_zero(shape, seed=0, margin=0.1):
    """Random values with |x| >= margin, so eps-steps never cross ReLU's kink."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(x >= 0, x + margin, x - margin)


def distinct(shape, seed=0):
    """A shuffle of well-separated values: no ties inside a pooling window."""
    return np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape) * 0.1


@pytest.mark.parametrize(
    "C, F, H, W, k, stride, padding",
    [
        (3, 4, 8, 8, 3, 1, "same"),
        (2, 3, 7, 5, 3, 2, 0),  # non-square, stride 2
        (2, 2, 6, 9, 3, 1, 1),
        (1, 3, 8, 7, 5, 1, 2),  # kernel 5, padding 2
        (3, 2, 5, 6, 1, 1, 0),  # kernel 1
        (2, 2, 9, 9, 5, 2, 1),
    ],
)
def test_conv2d(C, F, H, W, k, stride, padding):
    layer = minicnn.Conv2D(C, F, k, stride=stride, padding=padding, rng=1)
    layer.b.data[:] = np.random.default_rng(2).standard_normal(F)
    x = np.random.default_rng(0).standard_normal((2, C, H, W))
    errors = check_layer(layer, x, details=True)
    assert set(errors) == {"x", "param0", "param1"}
    assert max(errors.values()) < BOUND


@pytest.mark.parametrize(
    "shape, pool, stride",
    [
        ((2, 3, 8, 8), 2, None),
        ((2, 2, 7, 9), 2, None),  # odd: last row and column dropped
        ((1, 2, 9, 8), 3, 2),  # overlapping windows
        ((2, 1, 7, 7), 3, 1),  # heavily overlapping
    ],
)
@pytest.mark.parametrize("Pool", [minicnn.MaxPool2D, minicnn.AvgPool2D])
def test_pools(Pool, shape, pool, stride):
    layer = Pool(pool, stride)
    assert check_layer(layer, distinct(shape)) < BOUND
    assert layer.forward(distinct(shape)).shape[1:] == layer.output_shape(shape[1:])


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5, 6)])
def test_relu(shape):
    assert check_layer(minicnn.ReLU(), away_from_zero(shape)) < BOUND


@pytest.mark.parametrize("layer", [minicnn.Sigmoid(), minicnn.Softmax()], ids=repr)
def test_sigmoid_softmax(layer):
    x = np.random.default_rng(0).standard_normal((5, 7)) * 3
    assert check_layer(layer, x) < BOUND


def test_dense():
    layer = minicnn.Dense(6, 4, rng=3)
    layer.b.data[:] = 0.5
    assert check_layer(layer, np.random.default_rng(0).standard_normal((5, 6))) < BOUND


def test_flatten():
    assert check_layer(minicnn.Flatten(), np.random.default_rng(0).random((3, 2, 4, 5))) < BOUND


@pytest.mark.parametrize("training", [False, True])
def test_dropout(training):
    errors = check_layer(
        minicnn.Dropout(0.3, rng=5),
        np.random.default_rng(0).random((6, 40)),
        training=training,
        details=True,
    )
    assert errors["x"] < BOUND


def _loss_gradcheck(loss, logits, targets, eps=1e-6):
    value = loss.forward(logits, targets)
    analytic = loss.backward()
    numeric = np.zeros_like(logits)
    for i in range(logits.size):
        plus, minus = logits.copy(), logits.copy()
        plus.flat[i] += eps
        minus.flat[i] -= eps
        numeric.flat[i] = (loss.forward(plus, targets) - loss.forward(minus, targets)) / (2 * eps)
    return value, minicnn.gradcheck.rel_error(analytic, numeric)


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]])
def test_softmax_cross_entropy(weights):
    logits = np.random.default_rng(0).standard_normal((6, 4)) * 2
    targets = np.array([0, 1, 2, 3, 1, 0])
    value, err = _loss_gradcheck(minicnn.SoftmaxCrossEntropy(weights), logits, targets)
    assert err < BOUND
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    w = np.ones(4) if weights is None else np.array(weights)
    expected = (w[targets] * -np.log(p[np.arange(6), targets])).sum() / w[targets].sum()
    assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_binary_cross_entropy(pos_weight):
    logits = np.random.default_rng(0).standard_normal((6, 3)) * 2
    targets = (np.random.default_rng(1).random((6, 3)) > 0.5).astype(float)
    value, err = _loss_gradcheck(minicnn.BinaryCrossEntropy(pos_weight), logits, targets)
    assert err < BOUND
    s = 1 / (1 + np.exp(-logits))
    p = 1.0 if pos_weight is None else pos_weight
    expected = -(p * targets * np.log(s) + (1 - targets) * np.log(1 - s)).mean()
    assert value == pytest.approx(expected, rel=1e-12)


def test_losses_are_stable_for_huge_logits():
    logits = np.array([[5000.0, 0.0, -3000.0], [0.0, 4000.0, 1.0]])
    ce = minicnn.SoftmaxCrossEntropy()
    assert ce.forward(logits, np.array([0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert ce.forward(logits, np.array([1, 0])) == pytest.approx((5000 + 4000) / 2)
    assert np.isfinite(ce.backward()).all()
    bce = minicnn.BinaryCrossEntropy()
    assert bce.forward(np.array([[3000.0], [-3000.0]]), np.array([[0.0], [1.0]])) == (
        pytest.approx(3000.0)
    )
    assert np.isfinite(bce.backward()).all()


@pytest.mark.parametrize("preset", [minicnn.models.paper, minicnn.models.paper13])
def test_paper_networks_end_to_end(preset):
    model = preset(num_classes=5, seed=0)
    for p in model.parameters():  # non-zero biases so their gradients are exercised
        p.data += 0.01 * np.random.default_rng(1).standard_normal(p.shape).astype(p.data.dtype)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    errors = check_model(
        model, minicnn.SoftmaxCrossEntropy(), x, np.array([1, 3]), max_checks=12, details=True
    )
    assert len(errors) == 1 + len(model.parameters())
    assert max(errors.values()) < BOUND


def test_paper_sigmoid_head_end_to_end():
    model = minicnn.models.paper(num_classes=2, output="sigmoid", in_channels=1, seed=0)
    assert model.output_shape((1, 64, 64)) == (1,)
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 64))
    err = check_model(
        model,
        minicnn.BinaryCrossEntropy(),
        x,
        np.array([[0.0], [1.0]]),
        max_checks=12,
        training=True,
    )
    assert err < BOUND


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5, 3.0]])
def test_softmax_cross_entropy_label_smoothing(weights):
    logits = np.random.default_rng(3).standard_normal((6, 4)) * 2
    targets = np.array([0, 1, 2, 3, 1, 1])
    loss = minicnn.SoftmaxCrossEntropy(weights, label_smoothing=0.2)
    value, err = _loss_gradcheck(loss, logits, targets)
    assert err < BOUND
    # PyTorch's cross_entropy(weight=w, label_smoothing=s), mean reduction, written out:
    # [(1 - s) sum_i w[t_i] nll_i + s / K sum_i sum_k w[k] (-log p_ik)] / sum_i w[t_i]
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    w = np.ones(4) if weights is None else np.array(weights)
    nll = -log_p[np.arange(6), targets]
    smooth = -(log_p * w).sum(axis=1)
    expected = (0.8 * (w[targets] * nll).sum() + 0.2 / 4 * smooth.sum()) / w[targets].sum()
    assert value == pytest.approx(expected, rel=1e-12)
    if weights is None:  # the same as cross-entropy against the target (1 - s) one_hot + s / K
        q = np.full((6, 4), 0.2 / 4)
        q[np.arange(6), targets] += 0.8
        assert value == pytest.approx(-(q * log_p).sum(axis=1).mean(), rel=1e-12)
        loss.forward(logits, targets)  # the gradient check ended on a perturbed copy
        np.testing.assert_allclose(loss.backward(), (np.exp(log_p) - q) / 6, rtol=1e-10)


def test_label_smoothing_by_hand_and_its_bounds():
    # two classes, logits equal: p = 1/2 each, so every -log p is log 2 whatever the target
    loss = minicnn.SoftmaxCrossEntropy(label_smoothing=0.5)
    assert loss.forward(np.zeros((3, 2)), np.array([0, 1, 1])) == pytest.approx(np.log(2))
    # logits (0, log 3): p = (1/4, 3/4); target 1 with s = 0.5 -> q = (1/4, 3/4): the loss is
    # the entropy of q, and the gradient p - q is 0
    value = loss.forward(np.array([[0.0, np.log(3.0)]]), np.array([1]))
    assert value == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)), rel=1e-12)
    np.testing.assert_allclose(loss.backward(), 0, atol=1e-15)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            minicnn.SoftmaxCrossEntropy(label_smoothing=bad)
    with pytest.raises(ValueError, match="class_weights has shape"):
        minicnn.SoftmaxCrossEntropy([1.0, 2.0]).forward(np.zeros((2, 3)), np.array([0, 1]))
