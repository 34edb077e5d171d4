"""minicnn evaluate --split all: every image of the source scored, nothing carved, checked
against the model's own probabilities; a carved split of class folders alone is said in a
note; --split all with --threshold-from val is refused in one line."""

import numpy as np
import pytest
from PIL import Image
from test_cli_use import counted, write_folder  # noqa: F401 (counted: a fixture)
from test_evaluate_json import NAMES, assert_section_is, by_hand, chest_xray_test_jpegs, run
from test_evaluate_json import two_class_model as model_of

import minicnn
from minicnn.cli import main

NAMES_ON_DISK = ["NORMAL", "PNEUMONIA"]


def saved_model(tmp_path, channels):
    """A two-class model at threshold 0.5 (stored), saved to tmp_path/m.npz."""
    model = model_of(channels=channels)
    model.threshold = 0.5
    minicnn.save(model, tmp_path / "m.npz", metadata={"screening": {"rule": "fixed"}})
    return model


def test_class_folders_alone_are_scored_whole_with_split_all(counted, tmp_path, capsys):  # noqa: F811
    paths = chest_xray_test_jpegs(tmp_path / "chest_xray", per_class=10)  # 300x250 JPEGs
    source = tmp_path / "chest_xray" / "test"  # given directly: NORMAL/ and PNEUMONIA/ only
    model = saved_model(tmp_path, channels=1)
    argv = ["evaluate", tmp_path / "m.npz", "--data", source, "--json", tmp_path / "a.json"]
    out, got = run([*argv, "--split", "all", "--bootstrap", "100"], capsys)

    assert got["data"]["split"] == "all" and got["data"]["images"] == 20
    assert got["data"]["group_by"] is None  # nothing carved
    assert "minicnn.data: every image, nothing carved: 20 images (no split folders)" in out
    assert f"data: {source}, every image (no split folders), 20 images, 2 classes" in out
    assert not any(line.startswith("note:") for line in out)
    assert [len(c) for c in counted] == [20]
    files = [*paths["NORMAL"], *paths["PNEUMONIA"]]
    images = np.stack([by_hand(p, 16) for p in files])[:, None]  # (20, 1, 16, 16)
    labels = np.repeat([0, 1], 10)
    p1 = model.predict_proba(images)[:, 1]
    assert len(np.unique(p1)) == 20  # twenty images, each its own score
    assert_section_is(got["views"][0]["screening"], labels, p1, 0.5, 100, 0)


def test_a_carved_split_of_class_folders_alone_is_said_in_a_note(counted, tmp_path, capsys):  # noqa: F811
    chest_xray_test_jpegs(tmp_path / "chest_xray", per_class=10)
    source = tmp_path / "chest_xray" / "test"
    saved_model(tmp_path, channels=1)
    argv = ["evaluate", tmp_path / "m.npz", "--data", source, "--json", tmp_path / "c.json"]
    out, got = run([*argv, "--bootstrap", "0"], capsys)
    carved = minicnn.data.load(source, image_size=16, channels=1, splits="test", progress=False)
    assert len(carved.test) == got["data"]["images"] == 2  # a tenth of each class
    assert got["data"]["split"] == "test" and got["data"]["group_by"] == "auto"
    notes = [line for line in out if line.startswith("note:")]
    assert notes == [
        f"note: {source} has no split folders: scoring the test split carved from it as "
        "training carves (10% of its images, 2 of 20); --split all scores every image"
    ]
    assert [len(c) for c in counted] == [2]  # only the carved tenth was decoded


def test_split_all_of_split_folders_scores_them_all(counted, tmp_path, capsys):  # noqa: F811
    data = write_folder(tmp_path / "data", ("train", "test"), NAMES_ON_DISK, 12)
    model = saved_model(tmp_path, channels=3)
    argv = ["evaluate", tmp_path / "m.npz", "--data", data, "--json", tmp_path / "s.json",
            "--split", "all", "--bootstrap", "50", "--seed", "2"]  # fmt: skip
    out, got = run(argv, capsys)
    assert got["data"]["split"] == "all" and got["data"]["images"] == 48
    assert "minicnn.data: every image, nothing carved: train 24 + test 24 = 48 images" in out
    assert f"data: {data}, every image (train + test), 48 images, 2 classes" in out
    assert not any(line.startswith(("note:", "carved splits")) for line in out)
    decoded = [m.replace("\\", "/") for m in counted[0]]
    assert len(counted) == 1 and sum("/train/" in m for m in decoded) == 24
    assert sum("/test/" in m for m in decoded) == 24
    files = [sorted((data / s / c).iterdir()) for s in ("train", "test") for c in NAMES_ON_DISK]
    images = np.stack([np.asarray(Image.open(p)).transpose(2, 0, 1) for f in files for p in f])
    labels = np.tile(np.repeat([0, 1], 12), 2)  # train's NORMAL, PNEUMONIA, then test's
    p1 = model.predict_proba(images)[:, 1]  # 16x16 PNGs: read at 16, their own pixels
    assert_section_is(got["views"][0]["screening"], labels, p1, 0.5, 50, 2)


@pytest.mark.parametrize("models", [1, 2])
def test_split_all_with_threshold_from_val_is_one_error_line(counted, tmp_path, capsys, models):  # noqa: F811
    data = write_folder(tmp_path / "data", ("train", "val", "test"), NAMES, 3)
    saved_model(tmp_path, channels=3)
    more = ["--ensemble", str(tmp_path / "m.npz")] if models == 2 else []
    argv = ["evaluate", str(tmp_path / "m.npz"), *more, "--data", str(data), "--split", "all",
            "--threshold-from", "val"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: --threshold-from val cannot go with --split all: any val split would be among "
        "the images scored; give --threshold T or another --split"
    ]
    assert captured.out == "" and counted == []  # refused before any work
