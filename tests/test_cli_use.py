"""The commands that use a trained model: evaluate reads only what it scores, class names are
matched or refused by name, thresholds are said, summaries and captions read well."""

import csv

import numpy as np
import pytest
from PIL import Image

import minicnn
import minicnn.data.loaders as loaders
from minicnn.cli import main


def write_folder(root, splits, names, per_class=6, size=16, seed=0):
    """root/<split>/<name>/<k>.png, per_class small random images per class and split."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                pixels[..., c % 3] = 40 * c  # each class its own tint, for a non-trivial score
                Image.fromarray(pixels).save(folder / f"{split}{k}.png")
    return root


def small_model(names, output="softmax", channels=3, size=16):
    """An untrained network small enough to score in milliseconds, with class names."""
    L = minicnn.layers
    K = len(names)
    units = 1 if output == "sigmoid" else K
    model = minicnn.Sequential(
        [L.Conv2D(channels, 4, 3, padding="same"), L.ReLU(), L.MaxPool2D(4), L.Flatten(),
         L.Dense(4 * (size // 4) ** 2, units)],
        input_shape=(channels, size, size), output=output,
    )  # fmt: skip
    model.class_names = list(names)
    return model


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """Each call of the loader's decoder, as the list of files it was given; cache in tmp."""
    calls = []
    real = loaders.decode_many

    def counting(zip_path, members, *args, **kwargs):
        calls.append(list(members))
        return real(zip_path, members, *args, **{**kwargs, "workers": 1})

    monkeypatch.setattr(loaders, "decode_many", counting)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    return calls


def scored_lines(out):
    """The lines from `model:` on (the loader's notes come before)."""
    lines = out.splitlines()
    return lines[[k for k, line in enumerate(lines) if line.startswith("model: ")][0] :]


# ----------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("split", ["val", None])
def test_evaluate_decodes_and_caches_only_the_split_it_scores(counted, tmp_path, capsys, split):
    names = ["ant", "bee", "cat"]
    data = write_folder(tmp_path / "data", ("train", "val", "test"), names, per_class=20)
    model = small_model(names)
    minicnn.save(model, tmp_path / "m.npz")
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--no-progress"]
    assert main(argv + (["--split", split] if split else [])) == 0
    scored = split or "test"  # the default: test, as the folder has one
    assert len(counted) == 1
    decoded = [m.replace("\\", "/") for m in counted[0]]
    assert len(decoded) == 60 and all(f"/{scored}/" in m for m in decoded), decoded[:3]
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and f"-{scored}-" in cached[0].name, cached
    with np.load(cached[0]) as held:  # the cache holds the scored split's pixels only
        images = [k for k in held.files if k.endswith("_images")]
        assert images == [f"{scored}_images"] and len(held[images[0]]) == 60
    out = capsys.readouterr().out
    lines = scored_lines(out)
    assert f"{scored} split, 60 images, 3 classes" in lines[1]
    ds = minicnn.data.load(data, image_size=16, splits=scored, progress=False, cache=False)
    accuracy = np.mean(model.predict(getattr(ds, scored).images) == getattr(ds, scored).labels)
    assert lines[2].split() == ["one", "view", "accuracy", f"{accuracy:.2%}"]


def test_evaluate_without_a_test_split_scores_val_decoding_only_val(counted, tmp_path, capsys):
    names = ["ant", "bee"]
    data = write_folder(tmp_path / "data", ("train", "val"), names, per_class=30)
    minicnn.save(small_model(names), tmp_path / "m.npz")
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--no-progress"]
    assert main(argv) == 0
    assert len(counted) == 1 and len(counted[0]) == 60
    assert all("/val/" in m.replace("\\", "/") for m in counted[0])
    out = capsys.readouterr().out
    assert "val split, 60 images" in out
    assert out.count("minicnn.data: layout:") == 1  # the notes of the val load only


def test_evaluate_carves_as_the_training_stored_and_says_so(counted, tmp_path, capsys):
    """A carved val split comes from the model file's seed and group rule, unless given."""
    names = ["normal", "pneumonia"]
    root = tmp_path / "data" / "train"
    rng = np.random.default_rng(0)
    for c, name in enumerate(names):  # 12 patients a class, 3 images each
        (root / name).mkdir(parents=True)
        for patient in range(12):
            for k in range(3):
                pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / name / f"p{c}x{patient}_{k}.png")
    model = small_model(names)
    rule = r"^(p\d+x\d+)_"
    minicnn.save(model, tmp_path / "m.npz", metadata={"seed": 5, "group_by": rule})
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(tmp_path / "data"),
            "--split", "val", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"carved splits as in training: --seed 5 --group-by {rule} (from the model file)" in out
    expected = minicnn.data.load(tmp_path / "data", image_size=16, seed=5, group_by=rule,
                                 splits="val", progress=False, cache=False).val  # fmt: skip
    decoded = sorted(m.replace("\\", "/").rsplit("/", 1)[-1] for m in counted[0])
    patients = {name.split("_")[0] for name in decoded}
    assert len(decoded) == len(expected) == 3 * len(patients)  # whole patients: grouped
    capsys.readouterr()
    assert main(argv + ["--seed", "1", "--group-by", "none"]) == 0  # given: no line, other carve
    out = capsys.readouterr().out
    assert "carved splits as in training" not in out
    other = sorted(m.replace("\\", "/").rsplit("/", 1)[-1] for m in counted[-1])
    assert other != decoded


def test_class_names_differing_only_in_case_are_matched_in_one_line(counted, tmp_path, capsys):
    data = write_folder(tmp_path / "data", ("train", "test"), ["NORMAL", "PNEUMONIA"], 30)
    model = small_model(["normal", "pneumonia"])
    minicnn.save(model, tmp_path / "m.npz")
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("classes: ")]
    assert said == [
        "classes: the data's 'NORMAL', 'PNEUMONIA' are the model's 'normal', 'pneumonia' "
        "(the names differ only in case)"
    ]


def test_classes_in_another_order_are_matched_by_name(counted, tmp_path, capsys):
    data = write_folder(tmp_path / "data", ("train", "test"), ["Zebra", "apple", "mango"], 20)
    L = minicnn.layers
    model = minicnn.Sequential([L.GlobalAvgPool2D(), L.Dense(3, 3)], input_shape=(3, 16, 16))
    model.layers[1].W.data[:] = -np.eye(3)  # the darkest channel: the folder's class
    model.class_names = ["apple", "mango", "zebra"]  # the folder sorts Zebra first
    minicnn.save(model, tmp_path / "m.npz")
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(the names differ only in case and come in another order)" in out
    test = minicnn.data.load(data, image_size=16, splits="test", progress=False).test
    predicted = model.predict(test.images)
    assert np.mean(predicted == test.labels) == 1.0  # the folder's order: every one right
    truth = np.array([2, 0, 1])[test.labels]  # the folder's Zebra, apple, mango
    assert scored_lines(out)[2].split()[-1] == f"{np.mean(predicted == truth):.2%}" == "0.00%"


def test_other_classes_are_refused_naming_both_lists(counted, tmp_path, capsys):
    data = write_folder(tmp_path / "data", ("train", "test"), ["cat", "dog, puppy"], 30)
    minicnn.save(small_model(["cat", "horse"]), tmp_path / "m.npz")
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: the classes of {data} are not the model's: the data has 'cat', 'dog, puppy', "
        "the model 'cat', 'horse'"
    )


def test_two_class_evaluate_prints_accuracy_at_the_stored_threshold(counted, tmp_path, capsys):
    data = write_folder(tmp_path / "data", ("train", "test"), ["normal", "pneumonia"], 30)
    model = small_model(["normal", "pneumonia"], output="sigmoid")
    test = minicnn.data.load(data, image_size=16, splits="test", progress=False).test
    p1 = model.predict_proba(test.images)[:, 1]
    model.threshold = float(np.round(np.quantile(p1, 0.3), 4))  # not 0.5: it must be used
    minicnn.save(model, tmp_path / "m.npz", metadata={"screening": {"rule": "fixed"}})
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--no-progress"]
    assert main(argv + ["--bootstrap", "0"]) == 0  # no intervals (test_evaluate_json's)
    lines = scored_lines(capsys.readouterr().out)
    t = model.threshold
    assert lines[2] == f"decision: pneumonia when P(pneumonia) >= {t:.4g} (given with --threshold)"
    m = minicnn.metrics.binary_metrics(test.labels, p1, t)
    assert m["accuracy"] == pytest.approx(np.mean((p1 >= t) == test.labels))
    assert lines[3].split() == [
        "one", "view", "accuracy", f"{m['accuracy']:.2%}", "sensitivity",
        f"{m['sensitivity']:.3f}", "specificity", f"{m['specificity']:.3f}", "ROC", "AUC",
        f"{m['auc']:.3f}",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- predict


def test_predict_says_which_threshold_decided(tmp_path, capsys):
    model = small_model(["normal", "pneumonia"], output="sigmoid", channels=1)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 1, 16, 16), dtype=np.uint8)
    p1 = model.predict_proba(images)[:, 1]
    # between the 2nd and 3rd highest P: two images at or above it; and above 0.5 if they are
    t = float(np.sort(p1)[-3:-1].mean())
    model.threshold = t
    meta = {"target_sensitivity": 0.95, "screening": {"rule": "target_sensitivity"}}
    minicnn.save(model, tmp_path / "m.npz", metadata=meta)
    paths = []
    for k, image in enumerate(images):
        paths.append(tmp_path / f"x{k}.png")
        Image.fromarray(image[0]).save(paths[-1])
    table = tmp_path / "out.csv"
    assert main(["predict", str(tmp_path / "m.npz"), *map(str, paths), "--csv", str(table)]) == 0
    lines = capsys.readouterr().out.splitlines()
    how = "chosen on validation"
    for k, p in enumerate(p1):
        decided = "pneumonia" if p >= t else "normal"
        at_half = "pneumonia" if p >= 0.5 else "normal"
        where = "at or above" if p >= t else "below"
        line = f"  P(pneumonia) {p:.2%} -> {decided} ({where} the threshold {t:.4g} {how}"
        line += f"; 0.5 would say {at_half})" if at_half != decided else ")"
        assert lines[2 * k + 1] == line
    rows = list(csv.reader(table.open()))
    assert rows[0] == ["image", "decision", "P(pneumonia)", "threshold", "threshold from",
                       "decision at 0.5"]  # fmt: skip
    assert [r[1] for r in rows[1:]] == ["pneumonia" if p >= t else "normal" for p in p1]
    assert {r[4] for r in rows[1:]} == {how}
    assert [r[5] for r in rows[1:]] == ["pneumonia" if p >= 0.5 else "normal" for p in p1]


def test_predict_without_a_stored_threshold_says_the_default(tmp_path, capsys):
    model = small_model(["normal", "pneumonia"], output="sigmoid", channels=1)
    minicnn.save(model, tmp_path / "m.npz")
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "m.npz"), str(tmp_path / "x.png")]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.endswith("the threshold 0.5 used by default: the model stores none)"), line


# ----------------------------------------------------------------------------- summary


def test_summary_rounds_quotes_and_splits_trainable_parameters(tmp_path, capsys):
    model = small_model(["a, b", "c"])
    model.mean = np.array([0.4802, 0.4481, 0.3975], np.float32)  # float32: 0.48019999...
    model.std = np.array([0.2770, 0.2691, 0.2821], np.float32)
    minicnn.save(model, tmp_path / "m.npz")
    assert main(["summary", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "classes: 'a, b', 'c'" in out
    assert "normalisation: mean 0.4802, 0.4481, 0.3975; std 0.277, 0.2691, 0.2821" in out
    assert "0.4801999" not in out
    n = sum(p.size for p in model.parameters())
    assert f"Trainable params: {n:,}   Non-trainable params: 0" in out


def test_summary_totals_split_frozen_parameters_and_count_residual_blocks_once(capsys):
    L = minicnn.layers
    block = L.Residual([L.Conv2D(4, 4, 3, padding="same"), L.BatchNorm2D(4), L.ReLU()])
    model = minicnn.Sequential(
        [L.Conv2D(3, 4, 3, padding="same"), block, L.GlobalAvgPool2D(), L.Dense(4, 2)],
        input_shape=(3, 8, 8),
    )
    model.freeze()  # all but the head
    text = model.summary()
    head = 4 * 2 + 2
    conv0, inner = 3 * 4 * 9 + 4, 4 * 4 * 9 + 4 + 2 * 4  # conv + BatchNorm's gamma, beta
    assert text.totals["params"] == head + conv0 + inner
    assert text.totals["trainable"] == head
    assert text.totals["non_trainable"] == conv0 + inner
    assert text.totals["buffers"] == 2 * 4  # running mean and variance
    assert f"Trainable params: {head:,}   Non-trainable params: {conv0 + inner:,} (frozen)" in text
    assert "plus 8 running statistics (BatchNorm buffers: saved, not trained)" in text
    assert capsys.readouterr().out == text + "\n"  # printed as returned


# ----------------------------------------------------------------------------- class names


@pytest.mark.parametrize(
    "given, hint",
    [
        ("gokart", "(did you mean 'go-kart'?)"),
        ("Tabbycat", "(did you mean 'tabby cat'?)"),
        ("cat", "(did you mean 'tabby cat' or 'Egyptian cat'?)"),
    ],
)
def test_a_class_name_near_a_real_one_gets_did_you_mean(given, hint):
    from minicnn.cli.common import CommandError, class_index

    names = ["go-kart", "tabby, tabby cat", "Egyptian cat", "school bus"]
    assert class_index("TABBY CAT", names) == 1 and class_index("School Bus", names) == 3
    with pytest.raises(CommandError) as e:
        class_index(given, names)
    how = "give a class index (0..3) or a name"
    assert str(e.value) == f"no class is called {given!r} {hint}; {how}"


def test_explain_target_did_you_mean_and_short_captions(tmp_path, capsys):
    from minicnn.plots import shorten

    assert shorten("tailed frog, bell toad, ribbed toad", 24) == "tailed frog, bell toad\u2026"
    assert shorten("American lobster, Northern lobster", 17) == "American lobster\u2026"
    assert shorten("trilobite", 9) == "trilobite"
    assert shorten("abcdefghij", 6) == "abcde\u2026"  # one long word: nothing else fits
    names = ["tailed frog, bell toad, ribbed toad, tailed toad", "go-kart"]
    model = small_model(names)
    minicnn.save(model, tmp_path / "m.npz")
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / "x.png")
    argv = ["explain", str(tmp_path / "m.npz"), str(tmp_path / "x.png"), "--out"]
    assert main(argv + [str(tmp_path / "none"), "--target", "gokart"]) == 1
    assert "(did you mean 'go-kart'?)" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # refused before any work
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(folder / "x.png")
    assert main(argv[:2] + [str(folder), "--out", str(tmp_path / "ex"), "--target", "0"]) == 0
    page = (tmp_path / "ex" / "index.html").read_text()
    assert "tailed frog, bell toad\u2026  " in page  # 28 characters at most, cut at a word


def test_a_load_of_a_split_the_source_lacks_decodes_and_caches_nothing(counted, tmp_path):
    """Asking for test where there is none must not write a cache, nor remove another."""
    data = write_folder(tmp_path / "data", ("train", "val"), ["ant", "bee"], per_class=3)
    minicnn.data.load(data, image_size=16, progress=False)  # the cache of every split
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    ds = minicnn.data.load(data, image_size=16, splits="test", progress=False)
    assert ds.test is None and ds.train is None and ds.val is None
    assert len(counted) == 1  # the first load only
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == before and len(before) == 1
