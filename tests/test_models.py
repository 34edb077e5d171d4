"""The presets: their cost per image (the paper's notes), paper_bn's and paper_res's shapes,
the recipes."""

import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import check_model
from minicnn.layers.cost import cost
from minicnn.layers.nested import walk


def totals(model, input_shape=(3, 64, 64)):
    rows = cost(model.layers, input_shape)
    return {k: sum(r[k] for r in rows) for k in ("macs", "params", "activation_bytes")}


def test_cost_of_the_papers_networks():
    # conv: F * H' * W' * C * 9 per layer; dense: in * out (PAPER_NOTES.md: 12.0 M and 23.0 M)
    paper = 64 * 64 * 16 * 27 + 32 * 32 * 32 * 16 * 9 + 16 * 16 * 64 * 32 * 9
    paper += 8 * 8 * 16 * 64 * 9 + 4 * 4 * 64 * 16 * 9 + 256 * 128 + 128 * 200
    assert totals(minicnn.models.paper())["macs"] == paper == 12_002_304
    assert round(totals(minicnn.models.paper13())["macs"] / 1e6, 1) == 23.0
    rows = cost(minicnn.models.paper().layers, (3, 64, 64))
    assert rows[0] == {
        "index": 0,
        "layer": "Conv2D(3->16, 3x3)",
        "output_shape": (16, 64, 64),
        "params": 16 * 27 + 16,
        "macs": 64 * 64 * 16 * 27,
        "activations": 16 * 64 * 64,
        "activation_bytes": 4 * 16 * 64 * 64,
    }
    assert [r["macs"] for r in rows[1:3]] == [0, 0]  # ReLU, max pool
    assert totals(minicnn.models.paper())["params"] == sum(
        p.size for p in minicnn.models.paper().parameters()
    )


def test_paper_bn_shape_and_cost():
    model = minicnn.models.paper_bn()
    convs = [i for i, layer in enumerate(model.layers) if isinstance(layer, minicnn.Conv2D)]
    assert len(convs) == 8
    for i in convs:  # conv (no bias) -> BatchNorm -> ReLU
        conv, bn, relu = model.layers[i : i + 3]
        assert conv.b is None and conv.kernel_size == 3 and conv.padding == "same"
        assert isinstance(bn, minicnn.BatchNorm2D) and bn.num_features == conv.out_channels
        assert isinstance(relu, minicnn.ReLU)
    pools = [layer for layer in model.layers if isinstance(layer, minicnn.MaxPool2D)]
    assert len(pools) == 4 and all(p.pool_size == 2 for p in pools)
    assert [type(layer).__name__ for layer in model.layers[-3:]] == [
        "GlobalAvgPool2D",
        "Dropout",
        "Dense",
    ]
    assert model.output_shape((3, 64, 64)) == (200,)
    t = totals(model)
    conv_macs = 3 * 32 * 64**2 * 9 + 32 * 32 * 32**2 * 9 + (32 * 64 + 64 * 64) * 16**2 * 9
    conv_macs += (64 * 128 + 128 * 128) * 8**2 * 9 + (128 * 256 + 256 * 256) * 4**2 * 9
    bn_values = 32 * 64**2 + 32 * 32**2 + 2 * 64 * 16**2 + 2 * 128 * 8**2 + 2 * 256 * 4**2
    assert t["macs"] == conv_macs + 256 * 200 + bn_values == 55_715_840  # under 60 M
    assert t["params"] == 1_224_616
    assert model.output_shape((3, 40, 40)) == (200,)  # GAP takes any size
    sigmoid = minicnn.models.paper_bn(num_classes=2, in_channels=1, output="sigmoid")
    assert sigmoid.output_shape((1, 64, 64)) == (1,)


def test_paper_bn_end_to_end_gradcheck_in_training():
    # 32x32: the last maps are 2x2. At 16x16 they are 1x1, and a BatchNorm beta whose channel
    # is alive in every image only shifts all images alike, which the next BatchNorm removes:
    # true zero gradients, whose relative error means nothing.
    model = minicnn.models.paper_bn(num_classes=4, image_size=32, seed=1)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # BatchNorm's gamma and beta away from 1 and 0
        if isinstance(layer, minicnn.BatchNorm2D):
            layer.gamma.data = rng.uniform(0.5, 1.5, layer.num_features)
            layer.beta.data = 0.1 * rng.standard_normal(layer.num_features)
    x = rng.standard_normal((3, 3, 32, 32))
    errors = check_model(
        model, minicnn.SoftmaxCrossEntropy(), x, np.array([0, 3, 1]), training=True,
        max_checks=4, details=True,
    )  # fmt: skip
    assert len(errors) == 1 + len(model.parameters())
    assert max(errors.values()) < 1e-6


def test_paper_res_shape_and_cost():
    model = minicnn.models.paper_res()
    blocks = [layer for layer in model.layers if isinstance(layer, minicnn.Residual)]
    assert len(blocks) == 5 and all(b.activation == "relu" for b in blocks)
    # stem conv (no bias) -> BatchNorm -> ReLU -> pool; GAP, dropout, dense at the end
    names = [type(layer).__name__ for layer in model.layers]
    assert names[:4] == ["Conv2D", "BatchNorm2D", "ReLU", "MaxPool2D"]
    assert names[-3:] == ["GlobalAvgPool2D", "Dropout", "Dense"]
    assert model.layers[-2].rate == 0.2
    convs = [layer for _, layer in walk(model.layers) if isinstance(layer, minicnn.Conv2D)]
    assert len(convs) == 1 + 10 + 3  # stem, two per block, three projections
    assert all(c.b is None and c.kernel_size in (1, 3) for c in convs)
    strides = [(b.branch[0].stride, b.shortcut is None) for b in blocks]
    assert strides == [(1, True), (2, False), (2, False), (1, True), (2, False)]
    for b in blocks:  # each branch's last BatchNorm starts at gamma 0: the block is its shortcut
        assert not b.branch[-1].gamma.data.any()
    s = model.summary(print_fn=None)
    assert s.totals["macs"] <= 100e6  # the budget, as summary() reports it
    # 3x3 convs at 64 (stem), 32x32 (stage 1), 16, 8 (two blocks), 4; the stride-2 ones on
    # the halved maps; 1x1 projections; one multiply-add per BatchNorm value; the head
    conv3 = 64**2 * 3 * 32 + 32**2 * 2 * 32 * 32 + 16**2 * (32 * 64 + 64 * 64)
    conv3 += 8**2 * (64 * 128 + 3 * 128 * 128) + 4**2 * (128 * 256 + 256 * 256)
    conv1 = 16**2 * 32 * 64 + 8**2 * 64 * 128 + 4**2 * 128 * 256
    bn = 64**2 * 32 + 32**2 * 2 * 32 + 16**2 * 3 * 64 + 8**2 * 5 * 128 + 4**2 * 3 * 256
    assert s.totals["macs"] == 9 * conv3 + conv1 + bn + 256 * 200 == 85_678_080
    assert s.totals["params"] == sum(p.size for p in model.parameters()) == 1_573_224
    assert model.output_shape((3, 64, 64)) == (200,) and model.output_shape((3, 40, 40)) == (200,)
    sigmoid = minicnn.models.paper_res(num_classes=2, in_channels=1, output="sigmoid")
    assert sigmoid.output_shape((1, 64, 64)) == (1,)
    again = minicnn.models.paper_res()
    for p, q in zip(model.parameters(), again.parameters()):  # the seed decides every weight
        np.testing.assert_array_equal(p.data, q.data)


def test_paper_res_end_to_end_gradcheck_in_training():
    model = minicnn.models.paper_res(num_classes=3, image_size=32, dropout=0.1, seed=2)
    rng = np.random.default_rng(3)
    for _, layer in walk(model.layers):  # BatchNorm away from gamma 1 (or 0) and beta 0
        if isinstance(layer, minicnn.BatchNorm2D):
            layer.gamma.data = rng.uniform(0.5, 1.5, layer.num_features)
            layer.beta.data = 0.1 * rng.standard_normal(layer.num_features)
    x = rng.standard_normal((3, 3, 32, 32))
    errors = check_model(
        model, minicnn.SoftmaxCrossEntropy(), x, np.array([2, 0, 1]), training=True,
        max_checks=3, details=True,
    )  # fmt: skip
    assert len(errors) == 1 + len(model.parameters())
    assert max(errors.values()) < 1e-6


def test_recipes():
    for preset in ("paper", "paper13"):  # the paper's settings, nothing added
        r = minicnn.models.recipe(preset)
        assert (r["optimizer"], r["lr"], r["batch_size"], r["epochs"]) == ("Adam", 1e-4, 32, 20)
        assert r["schedule"] is None and r["augment"] is None and r["label_smoothing"] == 0.0
        assert r["weight_decay"] == 0.0 and r["dropout"] == 0.2
    r = minicnn.models.recipe("paper_bn")
    assert set(r) == set(minicnn.models.recipe("paper"))
    assert (r["optimizer"], r["schedule"], r["no_decay"]) == ("AdamW", "cosine", "biases_and_norms")
    assert r["epochs"] <= 30 and 0 < r["label_smoothing"] < 1 and r["warmup_epochs"] >= 1
    assert not minicnn.data.Augment(**r["augment"]).is_identity
    r["lr"] = 1.0  # a copy: changing it changes no default
    assert minicnn.models.recipe("paper_bn")["lr"] != 1.0
    r = minicnn.models.recipe("paper_res")
    assert set(r) == set(minicnn.models.recipe("paper"))
    assert (r["optimizer"], r["momentum"], r["nesterov"]) == ("SGD", 0.9, True)
    assert (r["schedule"], r["min_lr"], r["no_decay"]) == ("linear", 0.0, "biases_and_norms")
    assert r["epochs"] <= 30 and 0 < r["label_smoothing"] < 1 and r["warmup_epochs"] >= 1
    assert not minicnn.data.Augment(**r["augment"]).is_identity
    with pytest.raises(ValueError, match='"paper_bn" or "paper_res", got \'resnet\''):
        minicnn.models.recipe("resnet")
