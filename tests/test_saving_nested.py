"""A layer that holds layers (CHILDREN) saves, loads and resumes like any other.

Pair, defined here, stands for any such layer: y = scale * (branch(x) + shortcut(x)), the
shortcut None meaning the identity. It is registered only for these tests.
"""

import json

import numpy as np
import pytest

import minicnn
from minicnn.layers.base import output_shapes
from minicnn.saving import ModelFileError, load_checkpoint, save_checkpoint
from minicnn.saving.record import model_arrays, model_record
from minicnn.saving.validate import expected_arrays


def run(layers, x, training):
    for layer in layers:
        x = layer.forward(x, training)
    return x


class Pair(minicnn.Layer):
    """y = scale * (branch(x) + shortcut(x)); shortcut None: the identity. Forward only."""

    CHILDREN = ("branch", "shortcut")

    def __init__(self, branch, shortcut=None, scale=1.0):
        self.branch = list(branch)
        self.shortcut = None if shortcut is None else list(shortcut)
        self.scale = scale

    def config(self):
        return {"scale": self.scale}

    def forward(self, x, training=False):
        side = x if self.shortcut is None else run(self.shortcut, x, training)
        return self.scale * (run(self.branch, x, training) + side)

    def parameters(self):
        return [p for layer in self.branch + (self.shortcut or []) for p in layer.parameters()]

    def output_shape(self, input_shape):
        return output_shapes(self.branch, input_shape)[-1]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    monkeypatch.setitem(minicnn.layers.LAYER_TYPES, "Pair", Pair)


def nested_model(seed=0):
    """Conv -> Pair(branch: conv, BN, ReLU, Pair(conv 1x1), Dropout; shortcut: conv 1x1) ->
    ReLU -> global average -> Dense: a pair inside a pair, BatchNorm and Dropout inside."""
    rng = np.random.default_rng(seed)
    inner = Pair([minicnn.Conv2D(4, 4, 1, rng=rng)], scale=2.0)
    branch = [
        minicnn.Conv2D(4, 4, 3, padding="same", rng=rng),
        minicnn.BatchNorm2D(4),
        minicnn.ReLU(),
        inner,
        minicnn.Dropout(0.25, rng=7),
    ]
    layers = [
        minicnn.Conv2D(3, 4, 3, padding="same", rng=rng),
        Pair(branch, [minicnn.Conv2D(4, 4, 1, rng=rng, bias=False)], scale=0.5),
        minicnn.ReLU(),
        minicnn.GlobalAvgPool2D(),
        minicnn.Dense(4, 2, rng=rng),
    ]
    model = minicnn.Sequential(layers, input_shape=(3, 8, 8))
    bn = branch[1]
    bn.running_mean = rng.standard_normal(4).astype(np.float32)
    bn.running_var = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    for p in model.parameters():
        p.data = (p.data + 0.1 * rng.standard_normal(p.shape)).astype(np.float32)
    return model


def images(n=5):
    return np.random.default_rng(3).integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)


def test_a_nested_model_round_trips_bit_for_bit(tmp_path):
    model = nested_model()
    model.layers[1].branch[0].W.trainable = False  # a frozen parameter inside a pair
    minicnn.save(model, tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert np.array_equal(model.predict_proba(images()), loaded.predict_proba(images()))
    assert repr(loaded.layers[1].branch) == repr(model.layers[1].branch)
    assert type(loaded.layers[1].branch[3]) is Pair and loaded.layers[1].branch[3].scale == 2.0
    assert loaded.layers[1].branch[3].shortcut is None
    assert np.array_equal(
        loaded.layers[1].branch[1].running_var, model.layers[1].branch[1].running_var
    )
    frozen = [p for p in loaded.parameters() if not p.trainable]
    assert frozen == [loaded.layers[1].branch[0].W]


def test_nested_layers_are_recorded_under_children_and_their_arrays_named_by_path(tmp_path):
    model = nested_model()
    minicnn.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        record = json.loads(str(npz["minicnn.json"]))
        names = set(npz.files) - {"minicnn.json"}
    pair = record["layers"][1]
    assert pair["type"] == "Pair" and pair["config"] == {"scale": 0.5}
    assert [s["type"] for s in pair["children"]["branch"]] == [
        "Conv2D", "BatchNorm2D", "ReLU", "Pair", "Dropout"
    ]  # fmt: skip
    assert pair["children"]["branch"][3]["children"] == {
        "branch": [{"type": "Conv2D", "config": minicnn.Conv2D(4, 4, 1).config()}],
        "shortcut": None,
    }
    assert [s["type"] for s in pair["children"]["shortcut"]] == ["Conv2D"]
    assert "children" not in record["layers"][0]  # a plain layer's record is as it always was
    assert names == {
        "layers.0.W", "layers.0.b",
        "layers.1.branch.0.W", "layers.1.branch.0.b",
        "layers.1.branch.1.gamma", "layers.1.branch.1.beta",
        "layers.1.branch.1.running_mean", "layers.1.branch.1.running_var",
        "layers.1.branch.3.branch.0.W", "layers.1.branch.3.branch.0.b",
        "layers.1.shortcut.0.W",
        "layers.4.W", "layers.4.b",
    }  # fmt: skip
    stored = {k: a.shape for k, a in model_arrays(model).items()}
    assert expected_arrays("m.npz", model_record(model)) == stored


def test_a_nested_checkpoint_resumes_dropout_and_adam(tmp_path):
    model = nested_model()
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    x = model.preprocess(images())
    model.forward(x, training=True)  # Dropout's generator moves on
    rng = np.random.default_rng(9)
    for p in model.parameters():  # a gradient for Adam (Pair has no backward)
        p.grad = rng.standard_normal(p.shape).astype(np.float32)
    opt.step()
    save_checkpoint(tmp_path / "c.npz", model, opt, 1, [{"epoch": 1}])
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert list(json.loads(str(npz["minicnn.json"]))["dropout_states"]) == ["1.branch.4"]
    again = nested_model(seed=1)
    opt2 = minicnn.Adam(again.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path / "c.npz", again, opt2)
    assert state["epoch"] == 1 and opt2.t == opt.t
    assert all(
        np.array_equal(a.data, b.data) for a, b in zip(model.parameters(), again.parameters())
    )
    # the same Dropout masks from here on: training outputs agree
    assert np.array_equal(model.forward(x, training=True), again.forward(x, training=True))


def rewrite_record(src, dst, change):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    record = json.loads(str(arrays["minicnn.json"]))
    change(record)
    arrays["minicnn.json"] = np.array(json.dumps(record))
    np.savez(dst, **arrays)
    return dst


def children(record):
    return record["layers"][1]["children"]


BAD_NESTED = {
    "unknown type": (
        lambda r: children(r)["branch"][0].update(type="os.system"),
        r"layer #1.branch.0 has unknown type 'os.system'",
    ),
    "a list in a config": (
        lambda r: children(r)["branch"][0]["config"].update(kernel_size=[3]),
        r"layer #1.branch.0 Conv2D\(.*'kernel_size' is a list",
    ),
    "children missing": (
        lambda r: r["layers"][1].pop("children"),
        r"layer #1 Pair\(scale=0.5\) should hold branch, shortcut",
    ),
    "children of another name": (
        lambda r: children(r).update(side=children(r).pop("shortcut")),
        r"layer #1 Pair\(scale=0.5\) should hold branch, shortcut",
    ),
    "a child that is no list": (
        lambda r: children(r).update(shortcut={"type": "ReLU"}),
        r"layer #1 Pair\(scale=0.5\) should hold branch, shortcut \(lists of layers or null\)",
    ),
    "children on a plain layer": (
        lambda r: r["layers"][0].update(children={"branch": []}),
        r"layer #0 Conv2D\(.*\) should hold no layers",
    ),
    "a nested layer of another size": (
        lambda r: children(r)["branch"][3]["children"]["branch"][0]["config"].update(
            out_channels=5
        ),
        r"layer #1.branch.3.branch.0 Conv2D\(in_channels=4, out_channels=5.* needs "
        r"'layers.1.branch.3.branch.0.W' of shape \(5, 4, 1, 1\), the file holds \(4, 4, 1, 1\)",
    ),
    "a bad config for the holder": (
        lambda r: r["layers"][1]["config"].update(branch=1),
        r"cannot rebuild layer #1 Pair\(",
    ),
}


@pytest.mark.parametrize("case", BAD_NESTED, ids=list(BAD_NESTED))
def test_bad_nested_records_are_model_file_errors_naming_the_layer(tmp_path, case):
    good = tmp_path / "good.npz"
    minicnn.save(nested_model(), good)
    change, message = BAD_NESTED[case]
    bad = rewrite_record(good, tmp_path / "bad.npz", change)
    with pytest.raises(ModelFileError, match=r"bad.npz: .*" + message):
        minicnn.load(bad)


def test_nested_weights_missing_or_left_over_are_named(tmp_path):
    good = tmp_path / "good.npz"
    minicnn.save(nested_model(), good)
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(
        tmp_path / "a.npz", **{k: v for k, v in arrays.items() if k != "layers.1.shortcut.0.W"}
    )
    missing = r"a.npz: missing weights 'layers.1.shortcut.0.W' for layer #1.shortcut.0 Conv2D\("
    with pytest.raises(ModelFileError, match=missing):
        minicnn.load(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **arrays, **{"layers.1.branch.2.W": np.zeros(3, np.float32)})
    with pytest.raises(
        ModelFileError, match="b.npz: arrays layers.1.branch.2.W belong to no layer"
    ):
        minicnn.load(tmp_path / "b.npz")


def test_an_unregistered_layer_cannot_be_saved(tmp_path, monkeypatch):
    monkeypatch.delitem(minicnn.layers.LAYER_TYPES, "Pair")
    with pytest.raises(TypeError, match=r"cannot save layer Pair\(scale=0.5\): only AvgPool2D"):
        minicnn.save(nested_model(), tmp_path / "m.npz")
