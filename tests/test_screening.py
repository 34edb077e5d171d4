"""Screening at an operating point: the threshold chosen on validation, the figures at it,
the ROC curve and the bootstrap intervals, against values computed by hand."""

import math
import os

import numpy as np
import pytest

from minicnn import metrics
from minicnn.metrics import bootstrap, choose_threshold, roc_auc, roc_curve, screening_metrics

# 4 positives (0.9, 0.8, 0.6, 0.3) and 6 negatives (0.7, 0.4, 0.2, 0.1, 0.1, 0.05)
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05])


def test_screening_metrics_by_hand():
    m = screening_metrics(Y, S, 0.5)  # positive: 0.9 0.8 0.6 | 0.7
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 1, 5)
    assert m["sensitivity"] == 3 / 4 and m["specificity"] == 5 / 6
    assert m["ppv"] == 3 / 4 and m["npv"] == 5 / 6
    assert m["accuracy"] == 8 / 10 and m["f1"] == pytest.approx(6 / 8)
    m = screening_metrics(Y, S, 0.3)  # a score equal to the threshold is called positive
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (4, 0, 2, 4)
    assert m["npv"] == 1.0 and m["ppv"] == 4 / 6
    m = screening_metrics(Y, S, 0.95)  # nothing called positive: ppv undefined
    assert (m["tp"], m["fp"]) == (0, 0) and math.isnan(m["ppv"]) and m["f1"] == 0.0
    assert m["npv"] == 6 / 10


def test_binary_metrics_agrees_with_screening_metrics():
    b, m = metrics.binary_metrics(Y, S, 0.5), screening_metrics(Y, S, 0.5)
    assert b["precision"] == m["ppv"] and b["f1"] == m["f1"]
    assert b["auc"] == pytest.approx(21 / 24)  # 3 of the 24 pairs are misordered


@pytest.mark.parametrize(
    "target, threshold, found",
    [(0.95, 0.3, 4), (1.0, 0.3, 4), (0.75, 0.6, 3), (0.7, 0.6, 3), (0.5, 0.8, 2), (0.1, 0.9, 1)],
)
def test_threshold_is_the_highest_reaching_the_target(target, threshold, found):
    choice = choose_threshold(Y, S, target_sensitivity=target)
    assert choice["threshold"] == threshold and choice["rule"] == "target_sensitivity"
    assert choice["val"]["tp"] == found and choice["val"]["sensitivity"] >= target
    # any higher threshold misses the target
    assert screening_metrics(Y, S, np.nextafter(threshold, 1))["sensitivity"] < target
    assert choice["note"] is None


def test_threshold_default_target_and_boundaries():
    assert choose_threshold(Y, S)["target_sensitivity"] == 0.95
    # 20 positives: 19 of them make exactly 0.95, which counts as reaching it
    y = np.r_[np.ones(20, int), np.zeros(3, int)]
    s = np.r_[np.linspace(0.99, 0.4, 20), [0.5, 0.2, 0.1]]
    choice = choose_threshold(y, s, 0.95)
    assert choice["threshold"] == s[18] and choice["val"]["sensitivity"] == 0.95
    # tied positive scores: both 0.8s come together, so 0.8 gives 2/3 >= 0.5
    choice = choose_threshold([1, 1, 1, 0], [0.8, 0.8, 0.5, 0.6], 0.5)
    assert choice["threshold"] == 0.8 and choice["val"]["sensitivity"] == pytest.approx(2 / 3)
    assert choose_threshold([1, 1, 1, 0], [0.8, 0.8, 0.5, 0.6], 0.7)["threshold"] == 0.5


def test_fixed_threshold_is_kept_and_measured_on_val():
    choice = choose_threshold(Y, S, threshold=0.5)
    assert choice["threshold"] == 0.5 and choice["rule"] == "fixed"
    assert choice["val"]["sensitivity"] == 3 / 4


@pytest.mark.parametrize(
    "y, lacking",
    [([0, 0, 0], "no positive (class 1) images"), ([1, 1, 1], "no negative (class 0) images")],
)
def test_one_class_validation_falls_back_to_half(y, lacking):
    choice = choose_threshold(y, [0.2, 0.7, 0.9])
    assert choice["threshold"] == 0.5 and choice["rule"] == "fallback"
    assert lacking in choice["note"] and "falling back to 0.5" in choice["note"]
    assert choice["val"]["tp"] + choice["val"]["fp"] == 2  # 0.7 and 0.9 called positive


def test_no_validation_split_falls_back_and_bad_target_is_refused():
    choice = choose_threshold(None, None)
    assert (choice["threshold"], choice["rule"], choice["val"]) == (0.5, "fallback", None)
    assert "no validation split" in choice["note"]
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="target_sensitivity"):
            choose_threshold(Y, S, bad)


def test_roc_curve_by_hand():
    y = [0, 1, 1, 0, 1]
    s = [0.1, 0.9, 0.4, 0.4, 0.8]  # a tie at 0.4 between a positive and a negative
    # AUC: of the 6 pairs all are ordered right but the tie (0.4, 0.4), which counts 1/2
    fpr, tpr, thr = roc_curve(y, s)
    assert thr.tolist() == [np.inf, 0.9, 0.8, 0.4, 0.1]
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert fpr.tolist() == pytest.approx([0, 0, 0, 1 / 2, 1])
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # trapezoids: ties count half
    assert area == pytest.approx(roc_auc(y, s)) and area == pytest.approx(11 / 12)


def test_bootstrap_auc_of_multiplicities_equals_auc_of_the_repeated_images():
    y, s = np.array([1, 0, 1, 0, 1], bool), np.array([0.3, 0.3, 0.9, 0.5, 0.1])
    w = np.array([[2, 1, 0, 3, 1], [1, 1, 1, 1, 1]], float)
    got = metrics._weighted_auc(w, y, s)
    for row, value in zip(w.astype(int), got):
        idx = np.repeat(np.arange(5), row)
        assert value == pytest.approx(roc_auc(y[idx], s[idx]))
    # first row by hand: positives 0.3 x2, 0.1; negatives 0.3, 0.5 x3: of 3*4 = 12 pairs
    # weighted, only the two (0.3, 0.3) ties score, one half each
    assert got[0] == pytest.approx(1 / 12)


def naive_bootstrap(y, s, threshold, resamples, seed, level=0.95):
    """The plain loop: resample the images, compute each figure, take percentiles."""
    rng, values = np.random.default_rng(seed), {}
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        m = screening_metrics(y[i], s[i], threshold) | {"auc": roc_auc(y[i], s[i])}
        for k in (*metrics.SCREENING_FIGURES, "auc"):
            values.setdefault(k, []).append(m[k])
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    out = {}
    for k, v in values.items():
        v = np.array(v)
        out[k] = (*np.percentile(v[np.isfinite(v)], q), int(np.isfinite(v).sum()))
    return out


def test_bootstrap_equals_the_plain_loop():
    b = bootstrap(Y, S, 0.5, resamples=300, seed=7, block=64)  # blocks do not change draws
    for k, (low, high, defined) in naive_bootstrap(Y, S, 0.5, 300, 7).items():
        assert (b[k]["low"], b[k]["high"], b[k]["defined"]) == pytest.approx((low, high, defined))
    assert b["sensitivity"]["value"] == 3 / 4 and b["auc"]["value"] == pytest.approx(21 / 24)
    assert (b["resamples"], b["seed"], b["level"]) == (300, 7, 0.95)


def test_bootstrap_of_two_images_by_hand():
    # image 0 positive and found, image 1 negative and called positive (0.85 >= 0.8).
    # A resample is {0, 0} (p = 1/4), {1, 1} (1/4) or one of each (1/2), so accuracy is
    # 1, 0 or 0.5: its 95% interval is [0, 1]; sensitivity, defined when image 0 is drawn
    # (p = 3/4), is always 1; specificity, when image 1 is drawn, always 0.
    b = bootstrap([1, 0], [0.9, 0.85], 0.8)  # default: 2,000 resamples, seed 0
    assert b["resamples"] == 2000
    assert b["accuracy"] == {"value": 0.5, "low": 0.0, "high": 1.0, "defined": 2000}
    assert (b["sensitivity"]["low"], b["sensitivity"]["high"]) == (1.0, 1.0)
    assert (b["specificity"]["low"], b["specificity"]["high"]) == (0.0, 0.0)
    rng = np.random.default_rng(0)
    drawn = np.array([set(rng.integers(0, 2, 2)) for _ in range(2000)])
    assert b["sensitivity"]["defined"] == sum(0 in d for d in drawn)
    assert 1400 < b["sensitivity"]["defined"] < 1600  # about 3/4
    assert b["auc"]["defined"] == sum(d == {0, 1} for d in drawn)  # both classes: AUC 1
    assert (b["auc"]["low"], b["auc"]["high"]) == (1.0, 1.0)


def test_bootstrap_is_seeded_and_separable_data_has_no_spread():
    a, b = bootstrap(Y, S, 0.5, 200, seed=1), bootstrap(Y, S, 0.5, 200, seed=1)
    assert a == b
    c = bootstrap(Y, S, 0.5, 200, seed=2)
    figures = (*metrics.SCREENING_FIGURES, "auc")
    assert [c[k] for k in figures] != [a[k] for k in figures]
    assert all(c[k]["value"] == a[k]["value"] for k in figures)  # the point values stay
    y, s = [0, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.8, 0.9]
    sep = bootstrap(y, s, 0.5, 200)
    for k in (*metrics.SCREENING_FIGURES, "auc"):
        assert (sep[k]["value"], sep[k]["low"], sep[k]["high"]) == (1.0, 1.0, 1.0)


def test_roc_png_marks_the_operating_points(tmp_path):
    from PIL import Image

    from minicnn import plots

    fpr, tpr, _ = roc_curve(Y, S)
    points = [("chosen on val", 1 / 3, 1.0), ("t = 0.5", 1 / 6, 3 / 4)]
    path = plots.plot_roc(fpr, tpr, tmp_path / "roc.png", points, auc=roc_auc(Y, S))
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape == (50 + 460 + 55 + 60, 70 + 460 + 25, 3)
    x0, y1, side = 70, 50 + 460, 460  # the plot area's left and bottom edge, in pixels

    def at(f, t):
        return img[round(y1 - t * side), round(x0 + f * side)]

    assert at(1 / 3, 1.0).tolist() == list(plots.POINT_COLOURS[0])  # the chosen point
    assert at(1 / 6, 3 / 4).tolist() == list(plots.POINT_COLOURS[1])  # the point at 0.5
    assert at(0.0, 0.5).tolist() == list(plots.TRAIN_COLOUR)  # the curve rises at fpr 0


# ----------------------------------------------------------------------------- end to end


def chest_xray_folder(root, splits):
    """A tiny chest_xray layout: root/<split>/NORMAL|PNEUMONIA/*.png, 32x32 gray; pneumonia
    images carry a bright blob, so that a short training learns something."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, (n_normal, n_pneumonia) in splits.items():
        for name, n in (("NORMAL", n_normal), ("PNEUMONIA", n_pneumonia)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.normal(90, 25, (32, 32))
                if name == "PNEUMONIA":
                    cy, cx = rng.integers(8, 24, 2)
                    img += 110 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30)
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def train_xray(*args):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "train_xray.py"
    common = ["--image-size", "32", "--no-progress", "--no-cache", "--workers", "1"]
    return subprocess.run([sys.executable, str(script), *common, *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip


def test_xray_run_reports_at_the_threshold_chosen_on_val_and_predict_uses_it(tmp_path):
    import json
    import subprocess
    import sys

    import minicnn

    data = chest_xray_folder(
        tmp_path / "chest_xray", {"train": (40, 80), "val": (25, 35), "test": (20, 30)}
    )
    out = tmp_path / "run"
    result = train_xray("--data", data, "--epochs", "2", "--lr", "1e-3", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the highest with validation sensitivity >= 0.95" in result.stdout
    assert "95% interval (2,000 bootstrap resamples)" in result.stdout
    section = json.loads((out / "results.json").read_text())["screening"]
    model = minicnn.load(out / "model.npz")
    t = section["threshold"]
    assert model.threshold == t and section["rule"] == "target_sensitivity"
    assert section["threshold_source"] == "val" and section["val"]["sensitivity"] >= 0.95
    assert section["positive_class"] == "PNEUMONIA" and section["split"] == "test"
    assert sum(section["counts"].values()) == section["images"] == 50
    assert set(section["figures"]) == {*metrics.SCREENING_FIGURES, "auc"}
    for f in section["figures"].values():
        assert f["low"] <= f["value"] <= f["high"] or math.isnan(f["value"])
    assert section["bootstrap"]["resamples"] == 2000 and "at_0.5" in section
    assert (out / "roc.png").stat().st_size > 1000
    # calibration: the Brier score and ECE of the test split's P(PNEUMONIA), as recomputed
    # here from the saved model, with intervals around them, and the reliability bins
    test = minicnn.data.load(data, image_size=32, channels=1, cache=False, splits="test").test
    p = model.predict_proba(test.images)[:, 1]
    calib = section["calibration"]
    assert calib["brier"]["value"] == pytest.approx(metrics.brier_score(test.labels, p), abs=1e-6)
    ece = metrics.expected_calibration_error(test.labels, p)
    assert calib["ece"]["value"] == pytest.approx(ece, abs=1e-6)
    for key in ("brier", "ece"):
        f = calib[key]
        assert 0 <= f["low"] <= f["value"] <= f["high"] <= 1 and f["defined"] == 2000
        assert f"  {key:<12} {f['value']:6.3f}   {f['low']:.3f} - {f['high']:.3f}" in result.stdout
    assert "calibration of P(PNEUMONIA), 10 bins (same resamples):" in result.stdout
    bins = calib["reliability"]
    assert calib["bins"] == 10 and len(bins["edges"]) == 11 and sum(bins["images"]) == 50
    assert bins["images"] == np.bincount(np.minimum(p * 10, 9).astype(int), minlength=10).tolist()
    for n, f in zip(bins["images"], bins["frequency"]):
        assert (f is None) == (n == 0)  # an empty bin is null, not NaN
    assert (out / "calibration.png").stat().st_size > 1000
    assert not [f for f in os.listdir(out) if ".tmp" in f]  # written through temporary files
    # the model file's threshold decides in predict
    png = data / "test" / "PNEUMONIA" / "0.png"
    shown = subprocess.run([sys.executable, "-m", "minicnn", "predict", out / "model.npz", png],
                           capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    line = shown.stdout.splitlines()[1]
    p = float(line.split()[1].rstrip("%")) / 100
    decided = "PNEUMONIA" if p >= t else "NORMAL"
    assert line.split("->")[1].split()[0] == decided
    assert f"the threshold {t:.4g} chosen on validation" in line
    # --threshold fixes it instead; a bad target is one error line
    fixed = train_xray("--data", data, "--epochs", "1", "--threshold", "0.3", "--out", out)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "threshold 0.3: fixed by --threshold" in fixed.stdout
    assert minicnn.load(out / "model.npz").threshold == 0.3
    bad = train_xray("--data", data, "--target-sensitivity", "1.5", "--out", out)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: --target-sensitivity must be in (0, 1], got 1.5"


# ----------------------------------------------------------------------------- grouped splits


def kermany_train_folder(root, seed=0):
    """A train-only folder with the Kermany set's names, root/train/NORMAL|PNEUMONIA/*.jpeg:
    NORMAL patients as IM-0001-0001.jpeg (some NORMAL2-IM-...), PNEUMONIA patients as
    person1_bacteria_1.jpeg and person1_virus_2.jpeg, one to four images each. Each image's
    top-left 8x8 block holds 8 * its patient's number (1..28), so that the patient can be read
    back from the pixels. Returns the number of images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    count = 0
    for cls, patients in (("NORMAL", range(1, 15)), ("PNEUMONIA", range(15, 29))):
        folder = root / "train" / cls
        folder.mkdir(parents=True)
        for p in patients:
            for k in range(1, 1 + int(rng.integers(1, 5))):
                if cls == "NORMAL":
                    name = f"{'NORMAL2-' if p % 3 == 0 else ''}IM-{p:04d}-{k:04d}.jpeg"
                else:
                    name = f"person{p}_{'bacteria' if (p + k) % 2 else 'virus'}_{k}.jpeg"
                img = rng.normal(90, 20, (32, 32))
                if cls == "PNEUMONIA":
                    cy, cx = rng.integers(12, 24, 2)
                    img += 110 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30)
                img[:8, :8] = 8 * p
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name)
                count += 1
    return count


def patients_of(split):
    """The patient numbers of a split's images, read from their top-left block."""
    return set(np.round(split.images[:, 0, 2:6, 2:6].mean(axis=(1, 2)) / 8).astype(int).tolist())


def test_train_only_folder_is_split_by_patient_end_to_end(tmp_path):
    import json
    import re
    import subprocess
    import sys

    import minicnn

    data = tmp_path / "chest_xray_128"
    n = kermany_train_folder(data)
    out = tmp_path / "run"
    args = ["train", "--screening", "--data", data, "--image-size", "32", "--epochs", "1"]
    args += ["--no-progress", "--no-cache", "--workers", "1", "--bootstrap", "200"]
    result = subprocess.run([sys.executable, "-m", "minicnn", *map(str, args), "--out", out],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((out / "results.json").read_text())
    notes = results["data"]["notes"]
    grouped = next(note for note in notes if note.startswith("grouped by file name"))
    assert grouped in result.stdout  # printed as well as stored
    # 28 patients; each side's groups add up to 28: no patient is on two sides
    m = re.fullmatch(r"grouped by file name \(the default rule, (\d+) groups\): train (\d+) "
                     r"groups / (\d+) images, val (\d+) groups / (\d+) images, test (\d+) "
                     r"groups / (\d+) images", grouped)  # fmt: skip
    G, tg, ti, vg, vi, sg, si = map(int, m.groups())
    assert G == 28 and tg + vg + sg == G and ti + vi + si == n
    sizes = [results["data"][k] for k in ("train", "val", "test")]
    assert sizes == [ti, vi, si]
    assert vg >= 2 and sg >= 2  # both classes on each carved side
    # the model file keeps what carves the same splits again; they hold disjoint patients
    model = minicnn.load(out / "model.npz")
    assert (model.metadata["group_by"], model.metadata["seed"]) == ("auto", 0)
    assert (results["data"]["group_by"], results["data"]["seed"]) == ("auto", 0)
    rule, seed = model.metadata["group_by"], model.metadata["seed"]
    ds = minicnn.data.load(data, image_size=32, channels=1, cache=False, group_by=rule, seed=seed)
    sides = [patients_of(s) for s in (ds.train, ds.val, ds.test)]
    assert [len(s) for s in sides] == [tg, vg, sg]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert set.union(*sides) == set(range(1, 29))
    assert [len(ds.train), len(ds.val), len(ds.test)] == [ti, vi, si]


def test_group_by_none_splits_image_by_image_and_says_so(tmp_path, capsys):
    import json

    from minicnn.cli import main

    data = tmp_path / "xrays"
    kermany_train_folder(data)
    out = tmp_path / "run"
    argv = ["train", "--screening", "--data", str(data), "--image-size", "32", "--epochs", "1"]
    argv += ["--no-progress", "--no-cache", "--workers", "1", "--bootstrap", "50"]
    assert main([*argv, "--group-by", "none", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    note = "group_by 'none': split image by image"
    assert note in results["data"]["notes"] and note in printed
    assert results["data"]["group_by"] == "none" and results["settings"]["group_by"] == "none"


def test_screening_with_balanced_sampling_and_a_zoom(tmp_path, capsys, monkeypatch):
    """--balance sampling: the raw loss, fit told to balance, said and kept; --augment-scale:
    the zoom joins the screening augmentation, said in one line."""
    import json

    import minicnn
    from minicnn.cli import main
    from minicnn.cli import train as train_command

    told = {}
    real_fit = train_command.train_fit

    def fit(*args, **kwargs):
        told.update(balance=kwargs["balance"], augment=kwargs["augment"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_command, "train_fit", fit)
    out = tmp_path / "run"
    argv = ["train", "--screening", "--per-class", "12", "--image-size", "32", "--epochs", "1",
            "--batch-size", "16", "--balance", "sampling", "--augment", "--augment-scale", "0.1",
            "--bootstrap", "20", "--no-progress", "--workers", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert told["balance"] is True
    assert told["augment"].scale == 0.1 and told["augment"].rotate == 5
    assert told["augment"].flip == 0  # still no flips for X-rays
    assert ("augmentation: rotate 5, shift 0.05, brightness 0.1, contrast 0.1, scale 0.1 "
            "(--augment-scale given)") in printed  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    handling = results["imbalance"]["handling"]
    n = sum(results["imbalance"]["train_counts"])
    assert handling.startswith(f"each epoch draws {n} training images with replacement")
    assert f"class imbalance: {handling}" in printed
    model = minicnn.load(out / "model.npz")
    assert model.metadata["balance"] == "sampling" and model.metadata["pos_weight"] is None
    assert model.metadata["augment_scale"] == 0.1


@pytest.mark.parametrize(
    "options, message",
    [
        (["--augment-scale", "1.5"], "--augment-scale must be in [0, 1), got 1.5"),
        (["--augment-scale", "0.1", "--no-augment"],
         "--augment-scale adds a zoom to the augmentation, and this run does not augment "
         "(preset paper): give --augment too"),
    ],
)  # fmt: skip
def test_augment_scale_refusals(tmp_path, capsys, options, message):
    from minicnn.cli import main

    argv = ["train", "--screening", *options, "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert not (tmp_path / "run").exists()
