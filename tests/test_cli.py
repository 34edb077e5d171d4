"""`python -m minicnn`: predict the class of an image the model was trained on; summary; errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn.data import channel_stats, synthetic


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "minicnn", *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    ds = synthetic(num_classes=4, per_class=60, image_size=32, seed=1)
    model = minicnn.models.paper(num_classes=4, image_size=32)
    model.class_names = ["circle", "square", "ring", "cross"]
    model.mean, model.std = channel_stats(ds.train)
    opt = minicnn.Adam(model.parameters(), lr=2e-3)
    minicnn.fit(model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, None, epochs=6,
                batch_size=16, progress=False, print_fn=None)  # fmt: skip
    path = folder / "model.npz"
    minicnn.save(model, path)
    # a training image the model gets right, with high confidence, for each of two classes
    probs = model.predict_proba(ds.train.images)
    picks = []
    for c in (1, 3):
        ok = np.flatnonzero((ds.train.labels == c) & (probs.argmax(1) == c))
        i = ok[np.argmax(probs[ok, c])]
        png = folder / f"image{c}.png"
        Image.fromarray(ds.train.images[i].transpose(1, 2, 0)).save(png)
        picks.append((png, model.class_names[c], probs[i]))
    return path, picks


def test_predict_names_the_trained_class(trained):
    path, picks = trained
    result = run("predict", path, picks[0][0], picks[1][0], "--top-k", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6  # per image: its path, then 2 classes
    for k, (png, name, probs) in enumerate(picks):
        assert lines[3 * k] == str(png)
        assert lines[3 * k + 1].split()[:2] == ["1.", name]
        top = float(lines[3 * k + 1].split()[-1].rstrip("%")) / 100
        assert top == pytest.approx(probs.max(), abs=6e-5)  # printed with 2 decimals


def test_predict_preprocesses_other_sizes_and_modes(trained, tmp_path):
    path, picks = trained
    png, name, _ = picks[0]
    big = tmp_path / "big.jpg"  # 4x the size, JPEG, still the same picture
    Image.open(png).resize((128, 128), Image.Resampling.NEAREST).save(big, quality=95)
    result = run("predict", path, big)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 + 4  # top-k capped at the 4 classes


def test_summary_and_help(trained):
    path, _ = trained
    result = run("summary", path)
    assert result.returncode == 0, result.stderr
    assert "Conv2D(3->16, 3x3)" in result.stdout and "Total params" in result.stdout
    assert "classes: 'circle', 'square', 'ring', 'cross'" in result.stdout
    help_text = run("--help").stdout
    assert "predict" in help_text and "summary" in help_text


def test_errors_are_one_clear_line(trained, tmp_path):
    path, _ = trained
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    result = run("predict", bad, "x.png")
    assert result.returncode == 1
    assert "bad.npz is not a readable .npz file" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("predict", path, tmp_path / "nope.png")
    assert result.returncode != 0 and "image file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_a_folder_skips_and_reports_unreadable_images(trained, tmp_path):
    path, picks = trained
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.open(picks[0][0]).save(folder / "a.png")
    Image.open(picks[1][0]).save(folder / "sub" / "b.jpg", quality=95)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image, not even tried")
    table = tmp_path / "out.csv"
    result = run("predict", path, folder, "--top-k", "1", "--csv", table)
    assert result.returncode == 1  # one image could not be read: said, but nothing lost
    assert "broken.png" in result.stderr and "1 of 3 images could not be read" in result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(folder / "a.png") and lines[1].split()[:2] == ["1.", picks[0][1]]
    assert lines[2] == str(folder / "sub" / "b.jpg") and lines[3].split()[1] == picks[1][1]
    rows = table.read_text().splitlines()
    assert rows[0] == "image,rank,class,probability"
    assert rows[1].startswith(f"{folder / 'a.png'},1,{picks[0][1]},")
    assert len(rows) == 3


def test_an_unwritable_csv_is_one_line_after_the_predictions(trained, tmp_path):
    path, picks = trained
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("predict", path, picks[0][0], "--csv", blocker / "out.csv")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: cannot write {blocker / 'out.csv'}: {blocker}: File exists; nothing written"
    )
    assert result.stdout.splitlines()[0] == str(picks[0][0])  # the predictions were printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no temporary file left
    help_text = run("--help").stdout
    assert "--debug" in help_text and "MINICNN_DEBUG=1" in help_text


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory, trained):
    """A train|test folder of the trained classes' kind, and the model renamed to its classes."""
    root = tmp_path_factory.mktemp("evaluate")
    ds = synthetic(num_classes=4, per_class=60, image_size=32, seed=1)
    names = ["c0", "c1", "c2", "c3"]  # folder classes come sorted: name them in that order
    for split_name, split in (("train", ds.train), ("test", ds.test)):
        for i, (image, label) in enumerate(zip(split.images, split.labels)):
            folder = root / "data" / split_name / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i}.png")
    model = minicnn.load(trained[0])
    model.class_names = names
    minicnn.save(model, root / "model.npz")
    return root / "data", root / "model.npz", model, ds.test


def test_evaluate_reports_accuracy_one_view_and_flipped(folder_data, tmp_path):
    data, path, model, test = folder_data
    env = {**os.environ, "MINICNN_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "minicnn", "evaluate", path, "--data", data, "--tta", "flip",
         "--no-progress"], capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    one = np.mean(model.predict(test.images) == test.labels)
    both = np.mean(model.predict(test.images, tta="flip") == test.labels)
    lines = result.stdout.splitlines()  # the loader's notes, then the model's lines
    lines = lines[[k for k, line in enumerate(lines) if line.startswith("model: ")][0] :]
    assert f"test split, {len(test)} images, 4 classes" in lines[1]
    assert lines[2].split() == ["one", "view", "accuracy", f"{one:.2%}"]
    assert lines[3].split() == ["--tta", "flip:", "accuracy", f"{both:.2%}"]


def test_evaluate_refuses_data_of_other_classes(trained, folder_data, tmp_path):
    data, _, _, _ = folder_data
    env = {**os.environ, "MINICNN_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "minicnn", "evaluate", trained[0], "--data", data],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (  # after the progress bar
        f"error: the classes of {data} are not the model's: the data has 'c0', 'c1', 'c2', "
        "'c3', the model 'circle', 'square', 'ring', 'cross'"
    )


def test_evaluate_a_two_class_model_at_its_threshold(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 40)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 120, (n, 28, 28), dtype=np.uint8)
        images[labels == 1, 8:20, 8:20] += 120  # pneumonia: a bright patch, for a real AUC
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.reshape(n, 1)
    data = tmp_path / "pneumoniamnist.npz"
    np.savez(data, **arrays)
    model = minicnn.models.paper(num_classes=2, in_channels=1, image_size=32, output="sigmoid")
    model.class_names = ["normal", "pneumonia"]
    test = minicnn.data.load(data, image_size=32, channels=1, progress=False).test
    p1 = model.predict_proba(test.images)[:, 1]
    model.threshold = float(np.round(np.median(p1), 4))  # a threshold that splits the images
    path = tmp_path / "xray.npz"
    minicnn.save(model, path)
    result = run("evaluate", path, "--data", data, "--no-progress", "--bootstrap", "0")
    assert result.returncode == 0, result.stderr  # no intervals: see test_evaluate_json
    m = minicnn.metrics.binary_metrics(test.labels, p1, model.threshold)
    assert 0 < np.mean(p1 >= model.threshold) < 1
    lines = result.stdout.splitlines()
    decision = [s for s in lines if s.startswith("decision: ")]
    assert decision == [
        f"decision: pneumonia when P(pneumonia) >= {model.threshold:.4g} (stored in the model file)"
    ]
    line = [s for s in lines if "one view" in s][0]
    assert line.split() == [
        "one", "view", "accuracy", f"{m['accuracy']:.2%}", "sensitivity",
        f"{m['sensitivity']:.3f}", "specificity", f"{m['specificity']:.3f}", "ROC", "AUC",
        f"{m['auc']:.3f}",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- options


def usage_error(capsys, argv):
    """main(argv) refuses its options: exit code 2 and stderr's two lines (usage, error)."""
    from minicnn.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err.splitlines()


def test_an_option_error_is_the_commands_usage_line_and_the_error(capsys):
    usage = "usage: minicnn predict [options] MODEL IMAGE [IMAGE ...]"
    assert usage_error(capsys, ["predict", "m.npz", "a.png", "--topk", "3"]) == [
        usage,
        "minicnn predict: error: unrecognized arguments: --topk 3 (did you mean --top-k?)",
    ]
    assert usage_error(capsys, ["predict", "m.npz", "--topk", "3"]) == [  # 3: an IMAGE
        usage,
        "minicnn predict: error: unrecognized arguments: --topk (did you mean --top-k?)",
    ]
    assert usage_error(capsys, ["predict", "m.npz", "a.png", "--top-k", "0"]) == [
        usage,
        "minicnn predict: error: argument --top-k: must be 1 or more, got 0",
    ]
    assert usage_error(capsys, ["evaluate", "m.npz"]) == [
        "usage: minicnn evaluate [options] MODEL",
        "minicnn evaluate: error: the following arguments are required: --data",
    ]
    assert usage_error(capsys, ["train", "--lr", "-1"]) == [
        "usage: minicnn train [options]",
        "minicnn train: error: argument --lr: must be above 0, got -1",
    ]
    assert usage_error(capsys, ["train", "--epochs", "0", "--output", "tanh"])[0] == (
        "usage: minicnn train [options]"  # one line, whatever the number of options
    )


def test_an_unknown_command_gets_the_closest_one(capsys):
    lines = usage_error(capsys, ["predcit", "m.npz", "a.png"])
    assert lines[0] == "usage: minicnn [options] COMMAND ..."
    assert lines[1].startswith("minicnn: error: unknown command 'predcit' (did you mean predict?)")
    lines = usage_error(capsys, ["--debug", "qq"])
    assert lines[1] == (
        "minicnn: error: unknown command 'qq'; "
        "commands: train, predict, evaluate, summary, explain, filters, export"
    )


def test_version_help_and_the_console_script(capsys):
    from minicnn.cli import main

    result = run("--version")  # as a user runs it
    assert result.returncode == 0 and result.stdout == f"minicnn {minicnn.__version__}\n"
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: minicnn train [options]\n\nminicnn train: train a CNN")
    for option in ("--screening", "--balance", "--classes", "--output", "--init", "--resume"):
        assert f"\n  {option} " in help_text
    script = os.path.join(os.path.dirname(sys.executable), "minicnn")  # pip's console script
    if not os.path.exists(script):
        pytest.skip("minicnn is not installed with its console script here")
    shown = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert shown.stdout == f"minicnn {minicnn.__version__}\n"


@pytest.mark.parametrize(
    "options, message",
    [
        (["--screening", "--output", "softmax"], "--screening trains one sigmoid unit"),
        (["--screening", "--classes", "3"], "--classes is for the synthetic stand-in"),
        (["--screening", "--download", "tiny-imagenet"], "--screening needs two classes"),
        (["--balance", "none"], "--balance is for --screening"),
    ],
)
def test_train_refuses_options_of_the_other_mode_before_any_work(
    tmp_path, capsys, options, message
):
    from minicnn.cli import main

    assert main(["train", *options, "--out", str(tmp_path / "run")]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {message}") and len(err.splitlines()) == 1
    assert out == "" and not (tmp_path / "run").exists()


def test_an_example_scripts_option_error_is_its_usage_line_and_the_error():
    script = os.path.join(os.path.dirname(__file__), "..", "examples", "train_xray.py")
    result = subprocess.run([sys.executable, script, "--epochs", "0"], capture_output=True,
                            text=True)  # fmt: skip
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "usage: train_xray.py [options]",
        "train_xray.py: error: argument --epochs: must be 1 or more, got 0",
    ]


def test_the_command_modules_import_downwards_only():
    """minicnn.cli's modules import each other without a circle, and none imports the
    package that dispatches to them (minicnn.cli, minicnn.__main__)."""
    import ast
    from graphlib import TopologicalSorter

    folder = os.path.join(os.path.dirname(minicnn.__file__), "cli")
    graph = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name == "__init__.py":
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imported = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            names = {node.module} if node.module else {a.name for a in node.names}
            if node.level == 1:  # from .x import y, from . import x: a sibling
                imported |= names
            elif node.level == 2:  # from ..x import y: the library, never the dispatcher
                assert not names & {"cli", "__main__"}, f"{name} imports {names}"
        graph[name[:-3]] = imported
    assert {"common", "train", "predict", "evaluate", "summary", "explain"} <= set(graph)
    order = list(TopologicalSorter(graph).static_order())  # raises CycleError on a circle
    assert order.index("common") < order.index("train")
