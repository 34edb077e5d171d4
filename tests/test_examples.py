"""The example scripts run end to end with tiny settings and leave every promised file."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import minicnn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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


def test_presets_fill_the_recipe_options_left_out(monkeypatch, capsys):
    """A preset brings its own recipe: options given win, the rest come from the preset (or,
    with no --data, from the example's synthetic recipe), and the line says which is which."""
    import sys

    from minicnn import cli_train

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # parse() installs its own
    other = minicnn.models.recipe("paper_bn") | {"epochs": 30, "lr": 2e-3, "dropout": 0.1}
    paper_recipe = minicnn.models.recipe
    monkeypatch.setattr(
        minicnn.models, "recipe", lambda p: other if p == "other" else paper_recipe(p)
    )
    monkeypatch.setitem(cli_train.PRESETS, "other", minicnn.models.paper)
    parser = cli_train.parser("doc", "data", [], "out", synthetic={"epochs": 8})
    args = cli_train.parse(parser, ["--preset", "other", "--lr", "0.01"])
    assert (args.epochs, args.batch_size, args.lr, args.dropout, args.augment) == (
        8, 128, 0.01, 0.1, True
    )  # fmt: skip
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        "settings: preset other: epochs 8, batch size 128, optimizer AdamW, lr 0.01, weight "
        "decay 0.05, schedule cosine, warmup epochs 1, label smoothing 0.1, dropout 0.1, "
        "augment True (--lr given)"
    )
    assert cli_train.augmentation(args).rotate == 10  # the preset's own transforms
    args = cli_train.parse(parser, ["--data", "somewhere/set.zip", "--no-augment"])
    assert (args.epochs, args.batch_size, args.lr, args.augment) == (20, 32, 1e-4, False)
    assert args.data_name == "set" and "synthetic_recipe" not in vars(args)


def test_paper_bn_recipe_builds_adamw_cosine_and_leaves_norms_undecayed(monkeypatch):
    import sys

    from minicnn import cli_train

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # parse() installs its own
    parser = cli_train.parser("doc", "data", [], "out")
    args = cli_train.parse(parser, ["--preset", "paper_bn", "--data", "x.zip", "--epochs", "2"])
    model = minicnn.models.paper_bn(num_classes=3, image_size=16)
    opt = cli_train.optimizer(model, args)
    assert type(opt) is minicnn.AdamW and opt.lr == 2e-3
    decays = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    conv, bn = model[0], model[1]
    assert decays[id(conv.W)] == 0.05 and decays[id(bn.gamma)] == decays[id(bn.beta)] == 0
    sched = cli_train.schedule(opt, args, train_size=1000)  # 8 batches of 128 per epoch
    assert (sched.total_steps, sched.warmup_steps) == (16, 8)
    args.epochs = 1  # the warm-up epoch would be the whole run: it leaves the last step
    assert cli_train.schedule(opt, args, 1000).warmup_steps == 7
    args.schedule = "none"
    assert cli_train.schedule(opt, args, 1000) is None
