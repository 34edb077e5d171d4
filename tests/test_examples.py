"""The example scripts run end to end with tiny settings and leave every promised file."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minicnn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_cli(*args, cwd=None):
    """`python -m minicnn ARGS` as a user runs it; its stdout (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-m", "minicnn", *map(str, args), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def same_model(a, b):
    """Two model files hold the same layers, bit for bit, and the same threshold."""
    a, b = minicnn.load(a), minicnn.load(b)
    assert [repr(layer) for layer in a.layers] == [repr(layer) for layer in b.layers]
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    assert a.threshold == b.threshold and a.class_names == b.class_names


def run_example(script, *args):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check_outputs(out, epochs, K):
    names = {p.name for p in out.iterdir()}
    expected = {"model.npz", "checkpoint.npz", "history.csv", "curves.png", "confusion.csv"}
    assert expected | {"confusion.png", "results.json"} <= names
    model = minicnn.load(out / "model.npz")
    assert len(model.class_names) == K and model.mean is not None
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    columns = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "lr"}
    assert set(rows[0]) == columns
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)
    with open(out / "confusion.csv") as f:
        table = list(csv.reader(f))
    assert len(table) == K + 1 and table[0][1:] == model.class_names
    for png in ("curves.png", "confusion.png"):
        with Image.open(out / png) as img:
            img.load()
            assert img.size[0] > 300
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["metrics"]["accuracy"] <= 1.0
    assert results["epochs_run"] == epochs
    return results


def test_train_paper_runs_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["--classes", "4", "--per-class", "10", "--image-size", "32", "--out", out]
    stdout = run_example("train_paper.py", "--epochs", "1", *args)
    assert "SYNTHETIC stand-in" in stdout and "--data path/to/tiny-imagenet-200.zip" in stdout
    assert "epoch   1/1" in stdout and "test set" in stdout
    assert (
        "settings: preset paper: epochs 1, batch size 32, optimizer Adam, lr 0.0001, weight decay "
        "0.0, schedule none, warmup epochs 0, label smoothing 0.0, dropout 0.2" in stdout
    )
    results = check_outputs(out, 1, 4)
    assert results["settings"]["lr"] == 1e-4 and results["settings"]["batch_size"] == 32
    # minicnn train is the same run: the same lines, files and weights
    same = tmp_path / "same"
    shown = run_cli("train", "--epochs", "1", *args[:-1], same)
    assert shown.splitlines()[0] == stdout.splitlines()[0]  # the settings line
    assert (
        "SYNTHETIC stand-in" in shown
        and "minicnn train --screening (examples/train_xray.py)" in shown
    )
    same_results = check_outputs(same, 1, 4)
    assert same_results["metrics"] == results["metrics"]
    settings, same_settings = results["settings"], same_results["settings"]
    assert {k for k in settings if same_settings.get(k) != settings[k]} == {"out"}
    same_model(same / "model.npz", out / "model.npz")
    stdout = run_example("train_paper.py", "--epochs", "2", "--resume", "--tta", "flip", *args)
    assert "resumed from" in stdout and "epoch   2/2" in stdout
    results = check_outputs(out, 2, 4)
    # --tta flip: the same test split, each image averaged with its mirror, reported beside
    test = minicnn.data.synthetic(4, 10, 32, seed=0).test
    both = minicnn.train.evaluate(minicnn.load(out / "model.npz"), test, tta="flip")
    assert results["metrics"]["tta"]["views"] == "flip"
    assert results["metrics"]["tta"]["accuracy"] == both["accuracy"]
    assert f"with --tta flip (each image and its mirror): accuracy {both['accuracy']:.1%}" in stdout
    assert not (out / "train.lock").exists()  # the lock goes with the run


def test_train_xray_runs_with_a_sigmoid_head(tmp_path):
    out = tmp_path / "xray"
    stdout = run_example("train_xray.py", "--epochs", "1", "--image-size", "32", "--out", out)
    assert "SYNTHETIC grayscale 2-class stand-in" in stdout
    assert "class imbalance: positive term of the loss weighted by" in stdout
    for key in ("sensitivity", "specificity", "precision", "f1", "auc"):
        assert key in stdout
    results = check_outputs(out, 1, 2)
    assert set(results["metrics"]) >= {"sensitivity", "specificity", "f1", "auc", "tp"}
    assert 0.2 < results["settings"]["pos_weight"] < 0.5  # about 1 negative per 3 positives
    model = minicnn.load(out / "model.npz")
    assert model.input_shape == (1, 32, 32) and model.output == "sigmoid"
    assert model.output_shape(model.input_shape) == (1,)
    # minicnn train --screening is the same run, into runs/xray-synthetic by default
    shown = run_cli("train", "--screening", "--epochs", "1", "--image-size", "32", cwd=tmp_path)
    same = tmp_path / "runs" / "xray-synthetic"
    assert shown.splitlines()[0] == stdout.splitlines()[0]  # the settings line
    assert "SYNTHETIC grayscale 2-class stand-in" in shown
    files = ", ".join(sorted(p.name for p in out.iterdir()))
    assert f"wrote {files} to runs/xray-synthetic" in shown
    same_results = check_outputs(same, 1, 2)
    for key in ("metrics", "screening", "imbalance"):
        assert same_results[key] == results[key], key
    assert same_results["settings"]["pos_weight"] == results["settings"]["pos_weight"]
    same_model(same / "model.npz", out / "model.npz")


def test_presets_fill_the_recipe_options_left_out(monkeypatch, capsys):
    """A preset brings its own recipe: options given win, the rest come from the preset (or,
    with no --data, from the mode's synthetic recipe), and the line says which is which."""
    import sys

    from minicnn.cli import options, train

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # parse() installs its own
    other = minicnn.models.recipe("paper_bn") | {"epochs": 30, "lr": 2e-3, "dropout": 0.1}
    paper_recipe = minicnn.models.recipe
    monkeypatch.setattr(
        minicnn.models, "recipe", lambda p: other if p == "other" else paper_recipe(p)
    )
    monkeypatch.setitem(options.PRESETS, "other", minicnn.models.paper)
    parser = train.parser("doc", screening=True)  # the stand-in's recipe: 8 epochs
    args = train.parse(parser, ["--preset", "other", "--lr", "0.01"])
    assert (args.epochs, args.batch_size, args.lr, args.dropout, args.augment) == (
        8, 128, 0.01, 0.1, True
    )  # fmt: skip
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        "settings: preset other: epochs 8, batch size 128, optimizer AdamW, lr 0.01, weight "
        "decay 0.05, schedule cosine, warmup epochs 1, label smoothing 0.1, dropout 0.1, "
        "augment True (--lr given)"
    )
    assert options.augmentation(args).rotate == 10  # the preset's own transforms
    assert options.augmentation(args, train.SCREENING_AUGMENT).flip == 0  # X-rays: no flips
    args = train.parse(parser, ["--data", "somewhere/set.zip", "--no-augment"])
    assert (args.epochs, args.batch_size, args.lr, args.augment) == (20, 32, 1e-4, False)
    assert args.data_name == "set" and (args.output, args.balance) == ("sigmoid", "pos_weight")
    args = train.parse(train.parser("doc", screening=False), ["--epochs", "3"])
    assert (args.epochs, args.output, args.classes, args.screening) == (3, "softmax", 20, False)


def test_paper_bn_recipe_builds_adamw_cosine_and_leaves_norms_undecayed(monkeypatch):
    import sys

    from minicnn.cli import options, train

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # parse() installs its own
    parser = train.parser("doc", screening=False)
    args = train.parse(parser, ["--preset", "paper_bn", "--data", "x.zip", "--epochs", "2"])
    model = minicnn.models.paper_bn(num_classes=3, image_size=16)
    opt = options.optimizer(model, args)
    assert type(opt) is minicnn.AdamW and opt.lr == 2e-3
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    conv, bn = model[0], model[1]
    assert decays[id(conv.W)] == 0.05 and decays[id(bn.gamma)] == decays[id(bn.beta)] == 0
    sched = options.schedule(opt, args, train_size=1000)  # 8 batches of 128 per epoch
    assert (sched.total_steps, sched.warmup_steps) == (16, 8)
    args.epochs = 1  # the warm-up epoch would be the whole run: it leaves the last step
    assert options.schedule(opt, args, 1000).warmup_steps == 7
    args.schedule = "none"
    assert options.schedule(opt, args, 1000) is None


def test_examples_check_the_input_size_and_take_group_by(monkeypatch):
    """The examples' parsers are minicnn train's: --group-by is theirs, and an image size the
    preset cannot take is refused while parsing, before any data is read."""
    import sys

    from minicnn.cli import train
    from minicnn.cli.common import CommandError

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # parse() installs its own
    parser = train.parser("doc", screening=True)
    args = train.parse(parser, ["--data", "x.zip", "--group-by", r"^(p\d+)_"])
    assert args.group_by == r"^(p\d+)_"
    assert train.parse(parser, ["--data", "x.zip"]).group_by == "auto"
    with pytest.raises(CommandError, match=r"^--image-size 12 is too small for paper_bn: its "
                       r"MaxPool2D #4 \(layer #21\) would get 1x1 maps"):  # fmt: skip
        train.parse(parser, ["--preset", "paper_bn", "--image-size", "12"])
    assert train.parse(parser, ["--preset", "paper_bn", "--image-size", "16"]).image_size == 16
