"""Ensembles: minicnn.training.Ensemble averages its members' probabilities (with test-time
views too), refuses members that disagree, and minicnn evaluate / predict take --ensemble,
--threshold and (evaluate) --threshold-from val."""

import contextlib
import io

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


def test_members_of_other_split_seeds_are_noted_for_carved_splits(capsys):
    from minicnn.cli.ensemble import seeds_note

    models = [member(k) for k in range(3)]
    for k, m in enumerate(models):  # split_seed, else seed (files of an older minicnn)
        m.metadata = [{"seed": 0}, {"seed": 0, "split_seed": 1}, {"seed": None}][k]
    seeds_note(models)
    assert capsys.readouterr().out == (
        "note: the models' splits were carved with --split-seed 0, 1, ?: a validation split "
        "carved from train holds patients some member trained on (train them with one "
        "--split-seed)\n"
    )
    for k, m in enumerate(models):  # other --seed, one carve
        m.metadata = {"seed": k, "split_seed": 4} if k else {"seed": 4}
    seeds_note(models)
    seeds_note(models[:1])
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- --split-seed


@pytest.fixture(scope="module")
def seeded_runs(tmp_path_factory):
    """Three screening runs on a train-only folder of patients (test_screening's): a with
    --seed 0, b with --seed 1 --split-seed 0, c with --seed 1. Returns (data, argv, runs):
    runs[name] = (out folder, the data set the run loaded, what it printed)."""
    from test_screening import kermany_train_folder

    import minicnn.cli.run_data as run_data

    tmp = tmp_path_factory.mktemp("split_seed")
    data = tmp / "xrays"
    kermany_train_folder(data)
    argv = ["train", "--screening", "--data", str(data), "--image-size", "32", "--epochs", "1",
            "--no-progress", "--no-cache", "--workers", "1", "--bootstrap", "50"]  # fmt: skip
    loaded, runs = [], {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_data, "load", lambda *a, **k: loaded.append(minicnn.data.load(*a, **k))
                   or loaded[-1])  # fmt: skip
        for name, seeds in (("a", ["--seed", "0"]), ("b", ["--seed", "1", "--split-seed", "0"]),
                            ("c", ["--seed", "1"])):  # fmt: skip
            out = tmp / name
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                assert main([*argv, *seeds, "--out", str(out)]) == 0
            runs[name] = (out, loaded[-1], printed.getvalue())
    return data, argv, runs


def test_one_split_seed_carves_the_same_splits_under_other_seeds(seeded_runs):
    import json

    from test_screening import patients_of

    data, _, runs = seeded_runs
    (a, ds_a, out_a), (b, ds_b, out_b), (c, ds_c, out_c) = (runs[k] for k in "abc")
    for split in ("train", "val", "test"):  # b carved as a: the same images, pixel for pixel
        sa, sb = getattr(ds_a, split), getattr(ds_b, split)
        assert np.array_equal(sa.images, sb.images) and np.array_equal(sa.labels, sb.labels)
    wa, wb = (minicnn.load(run / "model.npz").parameters()[0].data for run in (a, b))
    assert wa.shape == wb.shape and not np.allclose(wa, wb)  # other weights: --seed 1
    # without --split-seed the carve follows --seed, as before: c is carved with seed 1
    again = minicnn.data.load(data, image_size=32, channels=1, cache=False, seed=1)
    assert np.array_equal(ds_c.val.images, again.val.images)
    assert patients_of(ds_c.val) != patients_of(ds_a.val)
    assert "split seed" not in out_a and "split seed" not in out_c
    assert out_b.splitlines()[0].endswith(", augment False, seed 1, split seed 0 (--epochs given)")
    metadata = [minicnn.load(run / "model.npz").metadata for run in (a, b, c)]
    assert [(m["seed"], m["split_seed"]) for m in metadata] == [(0, 0), (1, 0), (1, 1)]
    results = json.loads((b / "results.json").read_text())
    assert results["data"]["seed"] == results["settings"]["split_seed"] == 0
    assert results["settings"]["seed"] == 1


def test_evaluate_carves_with_the_stored_split_seed(seeded_runs, tmp_path, monkeypatch, capsys):
    import minicnn.cli.evaluate as evaluate_command

    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    data, _, runs = seeded_runs
    b, ds_b, _ = runs["b"]
    loaded = []
    monkeypatch.setattr(evaluate_command, "load", lambda *a, **k: loaded.append(
        minicnn.data.load(*a, **k)) or loaded[-1])  # fmt: skip
    argv = ["evaluate", str(b / "model.npz"), "--data", str(data), "--split", "val",
            "--no-progress", "--bootstrap", "0", "--json", str(tmp_path / "b.json")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "carved splits as in training: --seed 0 --group-by auto (from the model file)" in out
    import json

    scored = json.loads((tmp_path / "b.json").read_text())["data"]
    assert (scored["seed"], scored["images"]) == (0, len(ds_b.val))
    assert np.array_equal(loaded[-1].val.images, ds_b.val.images)  # the split b validated on


def test_an_ensemble_notes_members_carved_with_other_split_seeds(seeded_runs, tmp_path,
                                                                monkeypatch, capsys):  # fmt: skip
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    data, _, runs = seeded_runs
    a, b, c = (str(runs[k][0] / "model.npz") for k in "abc")
    base = ["--data", str(data), "--no-progress", "--threshold-from", "val", "--bootstrap", "0"]
    assert main(["evaluate", a, "--ensemble", b, *base]) == 0
    assert "note: the models' splits" not in capsys.readouterr().out  # one carve: seeds 0, 1
    assert main(["evaluate", a, "--ensemble", c, *base]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "--split-seed" in line]
    assert notes == [
        "note: the models' splits were carved with --split-seed 0, 1: a validation split carved "
        "from train holds patients some member trained on (train them with one --split-seed)"
    ]


def test_resume_keeps_the_split_seed_and_refuses_another(seeded_runs, tmp_path, capsys):
    import shutil

    from minicnn.saving.checkpoint import checkpoint_info

    _, argv, runs = seeded_runs
    out = tmp_path / "b"
    shutil.copytree(runs["b"][0], out)
    resumed = [*argv, "--seed", "1", "--epochs", "2", "--resume", "--out", str(out)]
    assert main(resumed) == 1  # --split-seed not given: 1 (--seed), not the checkpoint's 0
    assert capsys.readouterr().err.startswith(
        f"error: --resume: {out / 'checkpoint.npz'} was trained with --split-seed 0, not "
        "--split-seed 1: "
    )
    assert main([*resumed, "--split-seed", "0"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert checkpoint_info(str(out / "checkpoint.npz"))["settings"]["split_seed"] == 0
    assert checkpoint_info(str(out / "checkpoint.npz"))["epoch"] == 2
    assert minicnn.load(out / "model.npz").metadata["split_seed"] == 0
