"""Sequential: composition, shape errors that name the layer, summary, dtypes, determinism."""

import numpy as np
import pytest

import minicnn
from minicnn import models


def test_paper_architectures_match_the_notes():
    names = [type(layer).__name__ for layer in models.paper()]
    assert names[:3] == ["Conv2D", "ReLU", "MaxPool2D"]
    assert [layer.out_channels for layer in models.paper() if hasattr(layer, "out_channels")] == [
        16,
        32,
        64,
        16,
        64,
    ]
    assert [layer.out_channels for layer in models.paper13() if hasattr(layer, "out_channels")] == [
        32,
        32,
        64,
        64,
        64,
    ]
    assert models.paper().output_shape((3, 64, 64)) == (200,)
    flat = [layer for layer in models.paper13() if isinstance(layer, minicnn.Dense)][0]
    assert flat.in_features == 4096  # "8x8x64" before flatten
    dropout = [layer for layer in models.paper() if isinstance(layer, minicnn.Dropout)][0]
    assert dropout.rate == 0.2
    assert models.paper(num_classes=2, output="sigmoid").output_shape((3, 64, 64)) == (1,)
    assert models.paper(num_classes=5, output="sigmoid").output_shape((3, 64, 64)) == (5,)


def test_summary_counts_parameters():
    text = models.paper().summary(print_fn=None)
    # 448 + 4640 + 18496 + 9232 + 9280 + 32896 + 25800
    assert "Total params: 100,792" in text
    assert "(64, 2, 2)" in text and "(256,)" in text
    assert "Total params: 652,712" in models.paper13().summary(print_fn=None)


def test_summary_tells_and_returns_the_cost_per_image():
    s = models.paper().summary(print_fn=None)
    # conv1: 16 * 64*64 * 3*9 = 1,769,472; conv2: 32 * 32*32 * 16*9 = 4,718,592; ...
    assert s.rows[0]["macs"] == 16 * 64 * 64 * 27 and s.rows[3]["macs"] == 32 * 32 * 32 * 144
    assert s.totals["macs"] == 12_002_304  # the paper notes' 12.0 M
    assert models.paper13().summary(print_fn=None).totals["macs"] == 22_963_200  # 23.0 M
    assert s.rows[0]["activation_bytes"] == 16 * 64 * 64 * 4  # float32
    assert s.totals["activation_bytes"] == sum(r["activation_bytes"] for r in s.rows)
    assert "12.00 M multiply-adds" in s and "1.77 M" in s
    bn = models.paper_bn().summary(print_fn=None)
    assert bn.totals["macs"] <= 60e6  # its budget


def test_shape_mismatch_is_caught_at_build_and_names_the_layer():
    layers = [minicnn.Conv2D(3, 8, 3), minicnn.ReLU(), minicnn.Flatten(), minicnn.Dense(100, 4)]
    with pytest.raises(minicnn.ShapeError) as err:
        minicnn.Sequential(layers, input_shape=(3, 8, 8))
    msg = str(err.value)
    assert "layer #3 Dense(100 -> 4)" in msg and "after #2 Flatten()" in msg
    assert "(288,)" in msg and "100 features" in msg


def test_wrong_channels_in_forward_names_the_layer():
    model = minicnn.Sequential([minicnn.Conv2D(3, 4, 3), minicnn.ReLU()])
    with pytest.raises(minicnn.ShapeError, match=r"layer #0 Conv2D\(3->4, 3x3\).*\(1, 5, 5\)"):
        model.forward(np.zeros((2, 1, 5, 5), np.float32))
    with pytest.raises(minicnn.ShapeError, match="expects a batch"):
        models.paper().forward(np.zeros((2, 3, 32, 32), np.float32))


def test_indexing_iteration_and_parameters():
    model = models.paper()
    assert isinstance(model[0], minicnn.Conv2D) and len(model) == len(list(model)) == 20
    assert len(model.parameters()) == 14
    assert model.parameters()[0] is model[0].W


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    model = models.paper(num_classes=3).astype(dtype)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(dtype)
    logits = model.forward(x, training=True)
    assert logits.dtype == dtype
    assert model.backward(np.ones_like(logits), input_grad=True).dtype == dtype
    assert all(p.grad.dtype == dtype for p in model.parameters())


def test_first_layer_skips_the_input_gradient():
    model = models.paper(num_classes=3)
    logits = model.forward(np.ones((2, 3, 64, 64), np.float32))
    assert model.backward(np.ones_like(logits)) is None
    assert np.abs(model[0].W.grad).sum() > 0  # its weights still get their gradient


def _train(seed, steps=3):
    model = models.paper(num_classes=10, seed=seed)
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    loss = minicnn.SoftmaxCrossEntropy()
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    y = np.arange(8) % 10
    for _ in range(steps):
        value = loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward())
        opt.step()
    return model, value


def test_same_seed_same_weights_and_loss():
    a, loss_a = _train(seed=7)
    b, loss_b = _train(seed=7)
    c, loss_c = _train(seed=8)
    assert loss_a == loss_b
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert loss_a != loss_c


def test_training_lowers_the_loss_on_a_fixed_batch():
    _, first = _train(seed=0, steps=1)
    _, later = _train(seed=0, steps=15)
    assert later < 0.5 * first


def test_predict_proba_applies_stored_preprocessing():
    model = models.paper(num_classes=4, seed=1)
    model.mean, model.std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 64, 64), dtype=np.uint8)
    proba = model.predict_proba(images)
    x = (images / 255 - np.array([0.5, 0.4, 0.3])[:, None, None]) / np.array([0.2, 0.25, 0.3])[
        :, None, None
    ]
    logits = model.forward(x.astype(np.float32))
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(proba, expected, rtol=1e-5)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    assert model.predict(images).tolist() == expected.argmax(1).tolist()


def test_dropout_rate_is_read_at_each_forward():
    layer = minicnn.Dropout(0.5, rng=0)
    x = np.ones((1000, 10), np.float32)
    assert np.mean(layer.forward(x, training=True) == 0) == pytest.approx(0.5, abs=0.02)
    layer.rate = 0.1
    y = layer.forward(x, training=True)
    assert np.mean(y == 0) == pytest.approx(0.1, abs=0.02)
    assert y.max() == pytest.approx(1 / 0.9)
    np.testing.assert_array_equal(layer.forward(x), x)  # evaluation is the identity


def test_labels_out_of_range_are_a_clear_error():
    with pytest.raises(ValueError, match="label 7 is outside the 5 classes"):
        minicnn.SoftmaxCrossEntropy().forward(np.zeros((2, 5)), np.array([1, 7]))


def test_shape_errors_in_a_fused_block_name_the_failing_layer():
    model = minicnn.Sequential(
        [minicnn.Conv2D(1, 2, 3, padding="same"), minicnn.ReLU(), minicnn.MaxPool2D(2)]
    )
    with pytest.raises(minicnn.ShapeError, match=r"layer #2 MaxPool2D.*smaller than the pool"):
        model.forward(np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(
        minicnn.ShapeError, match=r"layer #0 Conv2D.*expects a batch \(N, C, H, W\)"
    ):
        model.forward(np.zeros((3, 3), np.float32))


def test_integer_input_is_refused_not_computed_on():
    model = models.paper(num_classes=3)
    pixels = np.zeros((1, 3, 64, 64), np.int64)
    with pytest.raises(TypeError, match="float arrays, got int64"):
        model.forward(pixels)
    with pytest.raises(TypeError, match="uint8 .* got int64"):
        model.predict_proba(pixels)


def test_predicting_no_images_gives_no_rows():
    model = models.paper(num_classes=3)
    assert model.predict_proba(np.zeros((0, 3, 64, 64), np.uint8)).shape == (0, 3)
    assert model.predict(np.zeros((0, 3, 64, 64), np.uint8)).shape == (0,)


def test_binary_targets_of_the_wrong_shape_get_the_loss_own_message():
    with pytest.raises(ValueError, match="expects targets of the logits' shape"):
        minicnn.BinaryCrossEntropy().forward(np.zeros((4, 3)), np.zeros(4))
