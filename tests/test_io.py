"""minicnn.save / minicnn.load (minicnn/saving/): exact round trips, no pickle, clear errors,
atomic writes; minicnn.io, the older name, still offers every name it had."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.saving import ModelFileError, load_checkpoint, save_checkpoint


def small_model(output="softmax", num_classes=3, in_channels=3):
    model = minicnn.models.paper(
        num_classes=num_classes, in_channels=in_channels, image_size=32, output=output, seed=4
    )
    rng = np.random.default_rng(0)
    for p in model.parameters():  # non-zero biases too, so every array is exercised
        p.data = (p.data + 0.01 * rng.standard_normal(p.shape)).astype(np.float32)
    model.class_names = [f"class {k}" for k in range(num_classes)]
    model.mean = np.array([0.4, 0.5, 0.6][:in_channels], np.float32)
    model.std = np.array([0.2, 0.25, 0.3][:in_channels], np.float32)
    return model


def images(n=6, channels=3):
    return np.random.default_rng(1).integers(0, 256, (n, channels, 32, 32), dtype=np.uint8)


@pytest.mark.parametrize("output,num_classes,channels", [("softmax", 3, 3), ("sigmoid", 2, 1)])
def test_round_trip_predicts_bit_for_bit(tmp_path, output, num_classes, channels):
    model = small_model(output, num_classes, channels)
    path = tmp_path / "model.npz"
    minicnn.save(model, path, metadata={"note": "test"})
    loaded = minicnn.load(path)
    x = images(channels=channels)
    assert np.array_equal(model.predict_proba(x), loaded.predict_proba(x))
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.config() for layer in loaded.layers] == [layer.config() for layer in model.layers]
    assert loaded.input_shape == (channels, 32, 32)
    assert loaded.output == output
    assert loaded.class_names == model.class_names
    assert np.array_equal(loaded.mean, model.mean) and np.array_equal(loaded.std, model.std)
    assert loaded.metadata == {"note": "test"}
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def test_file_is_plain_arrays_and_a_json_string(tmp_path):
    path = tmp_path / "model.npz"
    minicnn.save(small_model(), path)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["minicnn.json"].dtype.kind == "U"
        record = json.loads(str(npz["minicnn.json"]))
        assert npz["layers.0.W"].shape == (16, 3, 3, 3)
        assert all(npz[k].dtype == np.float32 for k in npz.files if k.startswith("layers."))
    assert record["format"] == "minicnn-model" and record["version"] == 1
    assert record["layers"][0] == {
        "type": "Conv2D",
        "config": {
            "in_channels": 3,
            "out_channels": 16,
            "kernel_size": 3,
            "stride": 1,
            "padding": "same",
        },
    }
    assert record["input_shape"] == [3, 32, 32] and record["image_size"] == 32
    assert record["channels"] == 3 and record["output"] == "softmax"
    assert record["class_names"] == ["class 0", "class 1", "class 2"]
    assert record["mean"] == pytest.approx([0.4, 0.5, 0.6])


def good_file(tmp_path):
    path = tmp_path / "model.npz"
    minicnn.save(small_model(), path)
    return path


def test_truncated_file_is_rejected(tmp_path):
    path = good_file(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"truncated\.npz .*(truncated|not a readable)"):
        minicnn.load(bad)


def test_other_formats_are_rejected(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("just some text")
    with pytest.raises(ModelFileError, match="notes.npz is not a readable .npz"):
        minicnn.load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="plain.npz is an .npz file but not a minicnn"):
        minicnn.load(plain)
    data = tmp_path / "pneumoniamnist.npz"  # a data set where a model is expected
    np.savez(data, train_images=np.zeros((2, 4, 4), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(ModelFileError) as e:
        minicnn.load(data)
    assert str(e.value) == (
        f"{data} is an .npz file but not a minicnn model file: it holds the arrays "
        "train_images, train_labels and no 'minicnn.json' record; it looks like a data set: "
        "give it with --data"
    )
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        minicnn.load(tmp_path / "missing.npz")


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"minicnn.json": np.array([{"format": "minicnn-model"}], dtype=object)})
    with pytest.raises(ModelFileError, match="evil.npz holds pickled Python objects"):
        minicnn.load(path)


def rewrite(path, out, drop=(), record_update=None):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    if record_update is not None:
        record = json.loads(str(arrays["minicnn.json"]))
        record.update(record_update)
        arrays["minicnn.json"] = np.array(json.dumps(record))
    np.savez(out, **arrays)
    return out


def test_missing_keys_and_wrong_versions_are_named(tmp_path):
    path = good_file(tmp_path)
    no_weights = rewrite(path, tmp_path / "a.npz", drop=("layers.3.W",))
    with pytest.raises(ModelFileError, match=r"a.npz: missing weights 'layers.3.W'"):
        minicnn.load(no_weights)
    newer = rewrite(path, tmp_path / "b.npz", record_update={"version": 99})
    with pytest.raises(ModelFileError, match="b.npz has minicnn-model version 99"):
        minicnn.load(newer)
    unknown = rewrite(path, tmp_path / "c.npz", record_update={"layers": [{"type": "os.system"}]})
    with pytest.raises(ModelFileError, match="c.npz: layer #0 has unknown type 'os.system'"):
        minicnn.load(unknown)
    checkpoint = tmp_path / "checkpoint.npz"
    model = small_model()
    save_checkpoint(checkpoint, model, minicnn.Adam(model.parameters()), 1, [])
    with pytest.raises(ModelFileError, match="'minicnn-checkpoint' file, expected 'minicnn-model'"):
        minicnn.load(checkpoint)


def test_a_failed_write_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    path = good_file(tmp_path)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        minicnn.save(small_model(num_classes=5), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_checkpoint_resumes_only_the_same_head(tmp_path):
    """Three classes: a softmax and a sigmoid head have the same layers, not the same loss."""
    model = small_model("softmax", 3, 3)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, minicnn.Adam(model.parameters()), 1, [])
    other = small_model("sigmoid", 3, 3)
    with pytest.raises(ModelFileError, match="--output needed to resume"):
        load_checkpoint(path, other, minicnn.Adam(other.parameters()))


def bn_model(num_classes=3):
    """paper_bn at 32x32: bias-free convolutions, BatchNorm with non-trivial running stats."""
    model = minicnn.models.paper_bn(num_classes=num_classes, image_size=32, seed=2)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, minicnn.BatchNorm2D):
            C = layer.num_features
            layer.running_mean = rng.standard_normal(C).astype(np.float32)
            layer.running_var = rng.uniform(0.5, 2.0, C).astype(np.float32)
            layer.beta.data = rng.standard_normal(C).astype(np.float32)
    model.class_names = [f"class {k}" for k in range(num_classes)]
    return model


def test_batchnorm_model_round_trip(tmp_path):
    model = bn_model()
    path = tmp_path / "bn.npz"
    minicnn.save(model, path)
    loaded = minicnn.load(path)
    x = images()
    assert np.array_equal(model.predict_proba(x), loaded.predict_proba(x))
    for a, b in zip(model.layers, loaded.layers):
        assert type(a) is type(b) and a.config() == b.config()
        if isinstance(a, minicnn.BatchNorm2D):
            assert np.array_equal(a.running_mean, b.running_mean)
            assert np.array_equal(a.running_var, b.running_var)
            assert b.running_var.dtype == np.float32
        if isinstance(a, minicnn.Conv2D):
            assert b.b is None and b.parameters() == [b.W]
    with np.load(path, allow_pickle=False) as npz:
        record = json.loads(str(npz["minicnn.json"]))
        assert record["layers"][0]["config"]["bias"] is False
        assert "layers.0.b" not in npz.files
        assert npz["layers.1.running_var"].shape == (32,)
        assert {"layers.1.gamma", "layers.1.beta", "layers.1.running_mean"} <= set(npz.files)
    assert [r["type"] for r in record["layers"]][-3:] == ["GlobalAvgPool2D", "Dropout", "Dense"]


def test_batchnorm_file_without_or_with_misshaped_running_stats_is_refused(tmp_path):
    path = tmp_path / "bn.npz"
    minicnn.save(bn_model(), path)
    missing = rewrite(path, tmp_path / "a.npz", drop=("layers.5.running_var",))
    no_var = r"a.npz: missing .*'layers.5.running_var' for .*BatchNorm2D"
    with pytest.raises(ModelFileError, match=no_var):
        minicnn.load(missing)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["layers.5.running_mean"] = np.zeros(5, np.float32)
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(ModelFileError) as err:
        minicnn.load(tmp_path / "b.npz")
    assert all(s in str(err.value) for s in ("b.npz", "'layers.5.running_mean'", "BatchNorm2D("))
    assert "(5,)" in str(err.value) and "(32,)" in str(err.value)


def test_avgpool_layers_save_and_load(tmp_path):
    layers = [
        minicnn.Conv2D(3, 4, 3, padding="same", rng=0),
        minicnn.AvgPool2D(3, stride=2),
        minicnn.BatchNorm2D(4),
        minicnn.GlobalAvgPool2D(),
        minicnn.BatchNorm1D(4),
        minicnn.Dense(4, 2, rng=1),
    ]
    model = minicnn.Sequential(layers, input_shape=(3, 32, 32))
    minicnn.save(model, tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in layers]
    x = images()
    assert np.array_equal(model.predict_proba(x), loaded.predict_proba(x))


SHIPPED = sorted((Path(__file__).resolve().parent.parent / "examples" / "models").glob("*.npz"))
WITHOUT_BATCHNORM = [p for p in SHIPPED if not p.name.startswith("paper_bn")]  # older files


@pytest.mark.parametrize("path", WITHOUT_BATCHNORM, ids=lambda p: p.name)
def test_model_files_written_before_batchnorm_still_load(path, tmp_path):
    model = minicnn.load(path)  # conv biases, no running statistics, no bias flag
    assert all(layer.b is not None for layer in model.layers if isinstance(layer, minicnn.Conv2D))
    minicnn.save(model, tmp_path / "again.npz")  # and are written again as they were
    with np.load(path, allow_pickle=False) as old, np.load(tmp_path / "again.npz") as new:
        assert (
            json.loads(str(new["minicnn.json"]))["layers"]
            == (json.loads(str(old["minicnn.json"]))["layers"])
        )
        assert set(new.files) == set(old.files)


def test_arrays_of_names_every_array_save_writes_for_every_layer_type():
    """ARRAYS_OF predicts, from config() alone, each array save() stores, for every type
    in LAYER_TYPES: a new layer type with parameters fails here until it is listed."""
    from minicnn.saving import ARRAYS_OF, LAYER_TYPES, model_record
    from minicnn.saving.record import model_arrays
    from minicnn.saving.validate import expected_arrays

    layers = [
        minicnn.Conv2D(3, 4, 3, padding="same", rng=0),
        minicnn.BatchNorm2D(4),
        minicnn.ReLU(),
        minicnn.MaxPool2D(2),
        minicnn.Conv2D(4, 6, 3, padding=1, rng=1, bias=False),
        minicnn.AvgPool2D(2),
        minicnn.Dropout(0.1),
        minicnn.GlobalAvgPool2D(),
        minicnn.BatchNorm1D(6),
        minicnn.Dense(6, 5, rng=2),
        minicnn.Sigmoid(),
        minicnn.Softmax(),
    ]
    block = minicnn.Residual([minicnn.ReLU()])  # holds layers, no arrays of its own
    model = minicnn.Sequential(layers, input_shape=(3, 8, 8))
    flat = minicnn.Sequential([minicnn.Flatten(), minicnn.Dense(12, 2)], input_shape=(3, 2, 2))
    assert {type(layer).__name__ for layer in layers + flat.layers + [block]} == set(LAYER_TYPES)
    assert set(ARRAYS_OF) <= set(LAYER_TYPES)
    for m in (model, flat):
        stored = {k: a.shape for k, a in model_arrays(m).items()}
        assert expected_arrays("m.npz", model_record(m)) == stored
    stored = expected_arrays("m.npz", model_record(model))
    assert stored["layers.4.W"] == (6, 4, 3, 3) and "layers.4.b" not in stored  # bias=False
    assert stored["layers.8.running_var"] == (6,) and len(stored) == 2 + 4 + 1 + 4 + 2


def test_the_layer_registry_is_every_layer_class_the_layers_package_exports():
    import minicnn.layers as layers
    from minicnn.saving import LAYER_TYPES

    exported = {
        name
        for name, obj in vars(layers).items()
        if isinstance(obj, type) and issubclass(obj, minicnn.Layer) and obj is not minicnn.Layer
    }
    assert LAYER_TYPES is layers.LAYER_TYPES and set(LAYER_TYPES) == exported
    assert LAYER_TYPES["Conv2D"] is minicnn.Conv2D and "Layer" not in LAYER_TYPES
    assert list(LAYER_TYPES) == sorted(LAYER_TYPES)  # the order an error message lists them


OLD_IO_NAMES = """ARRAYS_OF CHECKPOINT_FORMAT HISTORY_COLUMNS LAYER_TYPES MAX_LAYERS MAX_NESTING
    MAX_RECORD_CHARS MAX_SIZE MODEL_FORMAT RECORD_KEY VERSION ModelFileError WriteError
    atomic_savez atomic_write checkpoint_epoch dropout_states load load_checkpoint model_record
    save save_checkpoint set_dropout_states write_confusion_csv write_csv write_history_csv
    """.split()


def test_minicnn_io_still_offers_every_name_it_had():
    import minicnn.io
    import minicnn.saving

    for name in OLD_IO_NAMES:
        assert getattr(minicnn.io, name) is getattr(minicnn.saving, name), name
    assert minicnn.io.save is minicnn.save and minicnn.io.load is minicnn.load
    assert minicnn.io.MODEL_FORMAT == "minicnn-model" and minicnn.io.VERSION == 1


def test_results_writers_write_atomically(tmp_path):
    from minicnn.saving import write_confusion_csv, write_history_csv, write_json

    write_json(tmp_path / "results.json", {"accuracy": np.float32(0.75), "classes": ["a", "b"]})
    text = (tmp_path / "results.json").read_text(encoding="utf-8")
    assert json.loads(text) == {"accuracy": 0.75, "classes": ["a", "b"]}
    assert text.startswith('{\n  "accuracy": 0.75,')  # indented, as results.json always was
    write_history_csv(tmp_path / "history.csv", [{"epoch": 1, "train_loss": 0.5, "lr": None}])
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines == ["epoch,train_loss,train_acc,val_loss,val_acc,seconds,lr", "1,0.5,,,,,"]
    write_confusion_csv(tmp_path / "confusion.csv", np.array([[3, 1], [0, 4]]), ["cat", "dog"])
    lines = (tmp_path / "confusion.csv").read_text().splitlines()
    assert lines == ["true \\ predicted,cat,dog", "cat,3,1", "dog,0,4"]
    assert sorted(os.listdir(tmp_path)) == ["confusion.csv", "history.csv", "results.json"]
