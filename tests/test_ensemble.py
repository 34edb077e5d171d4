"""Ensembles: minicnn.training.Ensemble averages its members' probabilities (with test-time
views too), refuses members that disagree, and minicnn evaluate / predict take --ensemble,
--threshold and (evaluate) --threshold-from val."""

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn.cli import main
from minicnn.metrics import binary_metrics, choose_threshold
from minicnn.training import Ensemble, EnsembleError, evaluate


def member(seed, names=("normal", "pneumonia"), output="sigmoid", channels=1, size=8):
    """An untrained network, its weights drawn from `seed`, with class names and statistics."""
    L = minicnn.layers
    units = 1 if output == "sigmoid" else len(names)
    model = minicnn.Sequential(
        [L.Conv2D(channels, 3, 3, padding="same", rng=seed), L.ReLU(), L.MaxPool2D(2),
         L.Flatten(), L.Dense(3 * (size // 2) ** 2, units, rng=seed + 100)],
        input_shape=(channels, size, size), output=output,
    )  # fmt: skip
    model.class_names = list(names)
    model.mean = np.full(channels, 0.4 + 0.05 * seed, np.float32)  # each its own statistics
    model.std = np.full(channels, 0.25, np.float32)
    return model


def images(N=12, channels=1, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (N, channels, size, size), np.uint8)


def test_ensemble_probabilities_are_the_mean_of_the_members_with_and_without_flips():
    models = [member(k) for k in range(3)]
    x = images()
    ens = Ensemble(models)
    for tta in (None, "flip"):
        want = np.mean([m.predict_proba(x, tta=tta) for m in models], axis=0)
        got = ens.predict_proba(x, tta=tta)
        assert got.shape == (12, 2)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert not np.allclose(got, models[0].predict_proba(x, tta=tta))  # members differ
    flip = ens.predict_proba(x, tta="flip")
    assert not np.allclose(flip, ens.predict_proba(x))
    ens.threshold = float(np.median(flip[:, 1]))
    assert np.array_equal(ens.predict(x, tta="flip"), (flip[:, 1] >= ens.threshold).astype(int))
    assert len(ens) == 3 and ens.input_shape == (1, 8, 8) and ens.num_classes == 2
    assert ens.class_names == ["normal", "pneumonia"]


def test_ensemble_evaluate_averages_each_members_evaluate():
    models = [member(k, names=list("abcdefg"), output="softmax", channels=3) for k in range(2)]
    split = minicnn.data.Split(images(20, 3), np.arange(20) % 7)
    result = Ensemble(models).evaluate(split, tta="flip")
    each = [evaluate(m, split, tta="flip")["probs"] for m in models]
    np.testing.assert_allclose(result["members"], each, rtol=1e-6)
    np.testing.assert_allclose(result["probs"], np.mean(each, axis=0), rtol=1e-6)
    assert np.array_equal(result["predictions"], result["probs"].argmax(axis=1))
    assert result["accuracy"] == np.mean(result["predictions"] == split.labels)
    assert result["top5"] == minicnn.metrics.top_k_accuracy(split.labels, result["probs"], 5)
    assert result["loss"] is None


@pytest.mark.parametrize(
    "other, what, a, b",
    [
        (member(1, size=16), "input (channels, height, width)", "(1, 8, 8)", "(1, 16, 16)"),
        (member(1, names="abc", output="softmax"), "number of classes", "2", "3"),
        (member(1, names=("NORMAL", "pneumonia")), "class names",
         "['normal', 'pneumonia']", "['NORMAL', 'pneumonia']"),
    ],
)  # fmt: skip
def test_members_that_disagree_are_refused_naming_both(other, what, a, b):
    with pytest.raises(EnsembleError) as e:
        Ensemble([member(0), other], names=["a.npz", "b.npz"])
    assert str(e.value) == (
        f"the models of an ensemble must agree on their {what}: a.npz has {a}, b.npz {b}"
    )


# ----------------------------------------------------------------------------- the commands


def write_folder(root, per_class=(30, 30, 10), size=8, seed=0):
    """root/{train,val,test}/{normal,pneumonia}/<k>.png: gray, pneumonia a little brighter."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val", "test"), per_class):
        for c, name in enumerate(("normal", "pneumonia")):
            (root / split / name).mkdir(parents=True)
            for k in range(n):
                pixels = rng.integers(0, 200, (size, size), dtype=np.uint8) + 40 * c
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{k}.png")
    return root


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """Three two-class model files (seeds 0, 1, 2 in their metadata) and a data folder."""
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    paths = []
    for k in range(3):
        paths.append(str(tmp_path / f"m{k}.npz"))
        minicnn.save(member(k), paths[-1], metadata={"seed": 0})
    return paths, write_folder(tmp_path / "data")


def loaded(data, split):
    return getattr(minicnn.data.load(data, image_size=8, channels=1, splits=split,
                                     progress=False), split)  # fmt: skip


def test_evaluate_an_ensemble_with_the_threshold_chosen_on_val(saved, capsys):
    paths, data = saved
    argv = ["evaluate", paths[0], "--ensemble", paths[1], "--ensemble", paths[2], "--data",
            str(data), "--no-progress", "--threshold-from", "val", "--tta", "flip",
            "--bootstrap", "0"]  # fmt: skip
    assert main(argv) == 0  # --bootstrap 0: the lines without intervals (test_evaluate_json)
    out = capsys.readouterr().out
    ens = Ensemble([minicnn.load(p) for p in paths])
    val, test = loaded(data, "val"), loaded(data, "test")
    lines = [line for line in out[out.index("model: ") :].splitlines()
             if not line.startswith("minicnn.data:")]  # fmt: skip
    assert lines[0] == f"model: an ensemble of 3, {paths[0]} first"
    for row, tta in ((2, None), (3, "flip")):
        c = choose_threshold(val.labels, ens.predict_proba(val.images, tta=tta)[:, 1])
        v, t = c["val"], c["threshold"]
        view = "" if tta is None else " with --tta flip"
        assert lines[row] == (
            f"decision{view}: pneumonia when P(pneumonia) >= {t:.4g} (chosen on the val split, "
            f"60 images, for sensitivity 0.95: there sensitivity {v['sensitivity']:.3f}, "
            f"specificity {v['specificity']:.3f})"
        )
        m = binary_metrics(test.labels, ens.predict_proba(test.images, tta=tta)[:, 1], t)
        assert lines[row + 2].split() == [
            *(["one", "view"] if tta is None else ["--tta", "flip:"]), "accuracy",
            f"{m['accuracy']:.2%}", "sensitivity", f"{m['sensitivity']:.3f}", "specificity",
            f"{m['specificity']:.3f}", "ROC", "AUC", f"{m['auc']:.3f}",
        ]  # fmt: skip


def test_evaluate_an_ensemble_at_a_given_threshold_or_half(saved, capsys):
    paths, data = saved
    base = ["evaluate", paths[0], "--ensemble", paths[1], "--data", str(data), "--no-progress"]
    assert main([*base, "--threshold", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "decision: pneumonia when P(pneumonia) >= 0.3 (given with --threshold)" in out
    assert main(base) == 0
    out = capsys.readouterr().out
    assert ("decision: pneumonia when P(pneumonia) >= 0.5 (used by default: an ensemble stores "
            "none (--threshold-from val chooses one))") in out  # fmt: skip


def test_evaluate_refuses_members_that_disagree_and_both_threshold_options(saved, tmp_path,
                                                                            capsys):  # fmt: skip
    paths, data = saved
    minicnn.save(member(5, size=16), tmp_path / "big.npz")
    argv = ["evaluate", paths[0], "--ensemble", str(tmp_path / "big.npz"), "--data", str(data)]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: the models of an ensemble must agree on their input (channels, height, "
        f"width): {paths[0]} has (1, 8, 8), {tmp_path / 'big.npz'} (1, 16, 16)"
    )
    both = ["evaluate", paths[0], "--data", str(data), "--threshold", "0.4", "--threshold-from",
            "val"]  # fmt: skip
    assert main(both) == 1
    assert "give one" in capsys.readouterr().err


def test_predict_with_an_ensemble_and_flips_prints_the_mean(saved, tmp_path, capsys):
    paths, _ = saved
    x = images(3, seed=4)
    files = []
    for k, image in enumerate(x):
        files.append(str(tmp_path / f"x{k}.png"))
        Image.fromarray(image[0]).save(files[-1])
    argv = ["predict", paths[0], *files, "--ensemble", paths[1], "--tta", "flip",
            "--threshold", "0.45"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"ensemble of 2 models, their probabilities averaged: {', '.join(paths[:2])}"
    want = np.mean([minicnn.load(p).predict_proba(x, tta="flip") for p in paths[:2]], axis=0)
    for k, p in enumerate(want[:, 1]):
        decided = "pneumonia" if p >= 0.45 else "normal"
        assert lines[2 + 2 * k].startswith(f"  P(pneumonia) {p:.2%} -> {decided} (")
        assert "the threshold 0.45 given with --threshold" in lines[2 + 2 * k]


def test_members_of_other_seeds_are_noted_for_carved_splits(capsys):
    from minicnn.cli.ensemble import seeds_note

    models = [member(k) for k in range(3)]
    for k, m in enumerate(models):
        m.metadata = {"seed": k if k < 2 else None}
    seeds_note(models)
    assert capsys.readouterr().out == (
        "note: the models were trained with --seed 0, 1, ?; a split carved from train follows "
        "the first one's, and may hold images the others trained on\n"
    )
    for m in models:
        m.metadata = {"seed": 4}
    seeds_note(models)
    seeds_note(models[:1])
    assert capsys.readouterr().out == ""
