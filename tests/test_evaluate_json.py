"""minicnn evaluate --json: every figure printed, with the training report's intervals, checked
against the model's own probabilities; an official test folder (test/<CLASS>/*.jpeg alone)
is scored as training would have resized it."""

import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from test_cli_use import counted, small_model, write_folder  # noqa: F401 (counted: a fixture)

import minicnn
from minicnn import metrics
from minicnn.cli import main

NAMES = ["normal", "pneumonia"]
SECTION_KEYS = {  # the keys of a training run's results.json `screening`, and threshold_how
    "positive_class", "threshold", "threshold_source", "rule", "target_sensitivity", "note",
    "val", "split", "images", "counts", "figures", "at_0.5", "calibration", "bootstrap",
    "threshold_how",
}  # fmt: skip


def two_class_model(seed=None, channels=3):
    """small_model with one sigmoid unit; seed: its weights jittered, for an ensemble member."""
    model = small_model(NAMES, output="sigmoid", channels=channels)
    if seed is not None:
        rng = np.random.default_rng(seed)
        for p in model.parameters():
            p.data += rng.normal(0, 0.3, p.data.shape).astype(p.data.dtype)
    return model


def run(argv, capsys):
    """main(argv) must succeed; returns (its printed lines, the --json file's contents)."""
    assert main([*map(str, argv), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    path = argv[argv.index("--json") + 1]
    return out, json.loads(path.read_text())


def expected_section(labels, p1, t, resamples, seed):
    """The figures of the section recomputed with minicnn.metrics from P(class 1)."""
    return {
        "at_t": metrics.screening_metrics(labels, p1, t),
        "auc": metrics.roc_auc(labels, p1),
        "at_0.5": metrics.screening_metrics(labels, p1, 0.5),
        "brier": metrics.brier_score(labels, p1),
        "ece": metrics.expected_calibration_error(labels, p1),
        "intervals": metrics.bootstrap(labels, p1, t, resamples=resamples, seed=seed),
        "calibration": metrics.bootstrap_calibration(labels, p1, resamples=resamples, seed=seed),
    }


def assert_section_is(section, labels, p1, t, resamples, seed):
    """section's figures equal those of minicnn.metrics on (labels, p1) at t."""
    want = expected_section(labels, p1, t, resamples, seed)
    assert set(section) == SECTION_KEYS
    assert section["threshold"] == pytest.approx(t) and section["images"] == len(labels)
    assert section["counts"] == {k: want["at_t"][k] for k in ("tp", "fn", "fp", "tn")}
    for k in metrics.SCREENING_FIGURES:
        assert section["figures"][k]["value"] == pytest.approx(want["at_t"][k], nan_ok=True), k
    assert section["figures"]["auc"]["value"] == pytest.approx(want["auc"])
    for k in ("sensitivity", "specificity"):
        assert section["at_0.5"][k] == pytest.approx(want["at_0.5"][k], nan_ok=True)
    calibration = section["calibration"]
    assert calibration["brier"]["value"] == pytest.approx(want["brier"])
    assert calibration["ece"]["value"] == pytest.approx(want["ece"])
    intervals = [(section["figures"][k], want["intervals"][k]) for k in section["figures"]]
    intervals += [(calibration[k], want["calibration"][k]) for k in ("brier", "ece")]
    for got, expected in intervals:
        assert got["defined"] == expected["defined"]
        if resamples == 0:
            assert got["low"] is None and got["high"] is None
        elif got["defined"]:
            assert (got["low"], got["high"]) == pytest.approx((expected["low"], expected["high"]))
            assert got["low"] <= got["value"] <= got["high"]
    assert section["bootstrap"]["resamples"] == resamples and section["bootstrap"]["seed"] == seed


def test_json_holds_every_figure_as_minicnn_metrics_computes_it(counted, tmp_path, capsys):  # noqa: F811
    data = write_folder(tmp_path / "data", ("train", "test"), ["NORMAL", "PNEUMONIA"], 30)
    model = two_class_model()
    test = minicnn.data.load(data, image_size=16, splits="test", progress=False).test
    p1 = model.predict_proba(test.images)[:, 1]
    model.threshold = float(np.round(np.quantile(p1, 0.4), 4))  # not 0.5: it must be used
    meta = {"screening": {"rule": "target_sensitivity"}, "target_sensitivity": 0.9, "epoch": 3}
    minicnn.save(model, tmp_path / "m.npz", metadata=meta)
    argv = ["evaluate", tmp_path / "m.npz", "--data", data, "--json", tmp_path / "a.json"]
    out, got = run([*argv, "--bootstrap", "300", "--seed", "4"], capsys)

    assert got["models"] == [{"file": str(tmp_path / "m.npz"), "epoch": 3}]
    assert got["data"] == {
        "source": str(data), "split": "test", "images": 60, "classes": 2, "class_names": NAMES,
        "seed": 4, "group_by": "auto", "data_class_names": ["NORMAL", "PNEUMONIA"],
    }  # fmt: skip
    [view] = got["views"]
    section = view["screening"]
    assert_section_is(section, test.labels, p1, model.threshold, 300, 4)
    assert view["tta"] is None and view["accuracy"] == section["figures"]["accuracy"]["value"]
    assert section["threshold_source"] == "model_file" and section["rule"] == "target_sensitivity"
    assert section["target_sensitivity"] == 0.9 and section["positive_class"] == "pneumonia"
    assert section["threshold_how"] == "chosen on validation for sensitivity 0.9"
    f = section["figures"]
    a = f["accuracy"]
    shown = [f"{a['value']:.2%} ({a['low']:.2%}-{a['high']:.2%})"]
    shown += [f"{f[k]['value']:.3f} ({f[k]['low']:.3f}-{f[k]['high']:.3f})"
              for k in ("sensitivity", "specificity", "auc")]  # fmt: skip
    assert "95% intervals: 300 bootstrap resamples of the 60 images (seed 4)" in out
    assert out[-2] == (f"  one view     accuracy {shown[0]}   sensitivity {shown[1]}   "
                       f"specificity {shown[2]}   ROC AUC {shown[3]}")  # fmt: skip
    assert out[-1] == f"wrote {tmp_path / 'a.json'}"

    # the same --seed: the same file; another: other intervals around the same values
    _, again = run([*argv, "--bootstrap", "300", "--seed", "4"], capsys)
    assert again == got
    _, other = run([*argv, "--bootstrap", "300", "--seed", "5"], capsys)
    moved = other["views"][0]["screening"]["figures"]
    assert [g["value"] for g in moved.values()] == [g["value"] for g in f.values()]
    assert [(g["low"], g["high"]) for g in moved.values()] != [
        (g["low"], g["high"]) for g in f.values()
    ]
    # --bootstrap 0: no intervals, in the file (null) or on the screen
    out, bare = run([*argv, "--bootstrap", "0"], capsys)
    assert_section_is(bare["views"][0]["screening"], test.labels, p1, model.threshold, 0, 0)
    assert "(" not in out[-2] and not any(line.startswith("95% intervals") for line in out)


def test_tta_flip_gives_two_views_each_scored(counted, tmp_path, capsys):  # noqa: F811
    data = write_folder(tmp_path / "data", ("train", "test"), NAMES, 20)
    model = two_class_model()
    minicnn.save(model, tmp_path / "m.npz")  # no threshold stored: 0.5, said
    argv = ["evaluate", tmp_path / "m.npz", "--data", data, "--json", tmp_path / "t.json"]
    out, got = run([*argv, "--tta", "flip", "--bootstrap", "200"], capsys)
    assert [v["tta"] for v in got["views"]] == [None, "flip"]
    test = minicnn.data.load(data, image_size=16, splits="test", progress=False).test
    for view in got["views"]:
        p1 = model.predict_proba(test.images, tta=view["tta"])[:, 1]
        assert_section_is(view["screening"], test.labels, p1, 0.5, 200, 0)
        assert view["screening"]["threshold_source"] == "default"
    flipped = model.predict_proba(test.images, tta="flip")[:, 1]
    assert not np.allclose(flipped, model.predict_proba(test.images)[:, 1])  # two real views
    assert out[-2].startswith("  --tta flip:  accuracy ")


def test_ensemble_threshold_from_val_is_chosen_per_view_and_recorded(counted, tmp_path, capsys):  # noqa: F811
    data = write_folder(tmp_path / "data", ("train", "val", "test"), NAMES, 60)
    members = [two_class_model(seed) for seed in (1, 2)]
    for k, m in enumerate(members):
        minicnn.save(m, tmp_path / f"m{k}.npz")
    argv = ["evaluate", tmp_path / "m0.npz", "--ensemble", tmp_path / "m1.npz", "--data", data,
            "--threshold-from", "val", "--tta", "flip", "--bootstrap", "100",
            "--json", tmp_path / "e.json"]  # fmt: skip
    _, got = run(argv, capsys)
    assert [m["file"] for m in got["models"]] == [str(tmp_path / f"m{k}.npz") for k in (0, 1)]
    ds = minicnn.data.load(data, image_size=16, progress=False)
    assert len(ds.val) == 120  # the val folder, as it is

    def mean_p1(images, tta):
        return np.mean([m.predict_proba(images, tta=tta)[:, 1] for m in members], axis=0)

    thresholds = []
    for view in got["views"]:
        choice = metrics.choose_threshold(ds.val.labels, mean_p1(ds.val.images, view["tta"]))
        section = view["screening"]
        assert section["threshold_source"] == "val" and section["rule"] == "target_sensitivity"
        assert section["target_sensitivity"] == 0.95
        assert section["val"] == pytest.approx(choice["val"])  # validation figures at it
        assert section["val"]["sensitivity"] >= 0.95
        assert section["threshold_how"].startswith("chosen on the val split, 120 images")
        p1 = mean_p1(ds.test.images, view["tta"])
        assert_section_is(section, ds.test.labels, p1, choice["threshold"], 100, 0)
        thresholds.append(section["threshold"])
    assert thresholds[0] != thresholds[1]  # each view its own


def chest_xray_test_jpegs(root, per_class=5):
    """root/test/NORMAL|PNEUMONIA/<k>.jpeg, 300x250 JPEGs, gray and RGB in turn; PNEUMONIA
    brighter. Returns {class: [paths]} in file name order."""
    rng = np.random.default_rng(7)
    paths = {}
    for c, name in enumerate(["NORMAL", "PNEUMONIA"]):
        folder = root / "test" / name
        folder.mkdir(parents=True)
        paths[name] = []
        for k in range(per_class):
            pixels = rng.normal(90 + 50 * c, 30, (250, 300, 3)).clip(0, 255).astype(np.uint8)
            image = Image.fromarray(pixels if k % 2 else pixels[..., 0])  # RGB, gray
            paths[name].append(folder / f"{k:02d}.jpeg")
            image.save(paths[name][-1], quality=90)
    return paths


def by_hand(path, size):
    """One JPEG as minicnn.data.images.preprocess resizes it, in Pillow calls: reduced in the
    DCT domain to no less than twice the size, to gray, bilinear to size x size."""
    with Image.open(path) as img:
        img.draft("L", (2 * size, 2 * size))
        return np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR))


@pytest.mark.parametrize("where", ["test folder", "zip of a test folder", "train and test"])
def test_an_official_test_folder_is_scored_as_training_resizes(counted, tmp_path, capsys, where):  # noqa: F811
    root = tmp_path / "chest_xray"
    paths = chest_xray_test_jpegs(root)
    source = root
    if where == "zip of a test folder":
        source = tmp_path / "chest_xray.zip"
        with zipfile.ZipFile(source, "w") as z:
            for p in [*paths["NORMAL"], *paths["PNEUMONIA"]]:
                z.write(p, p.relative_to(tmp_path).as_posix())
    elif where == "train and test":
        write_folder(root, ("train",), ["NORMAL", "PNEUMONIA"], per_class=4)
    model = two_class_model(channels=1)
    model.threshold = 0.5
    minicnn.save(model, tmp_path / "m.npz", metadata={"screening": {"rule": "fixed"}})
    argv = ["evaluate", tmp_path / "m.npz", "--data", source, "--json", tmp_path / "x.json"]
    out, got = run([*argv, "--bootstrap", "50"], capsys)
    assert got["data"]["split"] == "test" and got["data"]["images"] == 10
    assert "classes: the data's 'NORMAL', 'PNEUMONIA' are the model's 'normal', 'pneumonia' " \
           "(the names differ only in case)" in out  # fmt: skip
    assert [len(c) for c in counted] == [10]  # the test images alone were decoded
    images = np.stack([by_hand(p, 16) for p in [*paths["NORMAL"], *paths["PNEUMONIA"]]])[:, None]
    labels = np.repeat([0, 1], 5)
    test = minicnn.data.load(source, image_size=16, channels=1, splits="test", progress=False).test
    np.testing.assert_array_equal(test.images, images)  # (10, 1, 16, 16) as resized by hand
    np.testing.assert_array_equal(test.labels, labels)
    p1 = model.predict_proba(images)[:, 1]
    assert_section_is(got["views"][0]["screening"], labels, p1, 0.5, 50, 0)


def test_a_test_only_folder_is_refused_for_training(tmp_path, capsys):
    chest_xray_test_jpegs(tmp_path / "chest_xray", per_class=2)
    argv = ["train", "--screening", "--data", str(tmp_path / "chest_xray"), "--image-size",
            "32", "--no-progress", "--no-cache", "--workers", "1", "--out",
            str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'chest_xray'} has no train split to train on (only test/ or val/ "
        "folders): score it with minicnn evaluate"
    )


@pytest.mark.parametrize("bad", ["no folder", "a folder"])
def test_a_bad_json_path_is_one_error_line_before_any_work(counted, tmp_path, capsys, bad):  # noqa: F811
    data = write_folder(tmp_path / "data", ("train", "test"), NAMES, 3)
    minicnn.save(two_class_model(), tmp_path / "m.npz")
    target = tmp_path / "missing" / "out.json" if bad == "no folder" else tmp_path / "data"
    argv = ["evaluate", str(tmp_path / "m.npz"), "--data", str(data), "--json", str(target)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    why = f": no folder {tmp_path / 'missing'}" if bad == "no folder" else " is a folder"
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --json {target}{why}")
    assert captured.out == "" and counted == []  # nothing loaded, nothing decoded
    assert not (tmp_path / "missing").exists()
