"""Checks around a training run: an input size the network cannot take is one line before any
work (naming the layer and the smallest size), a loss that explodes while staying finite is
warned about, and results.json says how the run was shared (ranks x threads)."""

import json

import numpy as np
import pytest

import minicnn
from minicnn import models
from minicnn.cli import main
from minicnn.data import synthetic
from minicnn.layers import ShapeError
from minicnn.training.watch import LossWatch

# ----------------------------------------------------------------------------- input size


@pytest.mark.parametrize(
    "build, size, layer, smallest",
    [
        # 8 -> 4 -> 2 -> 1: the fourth of five 2x2 pools gets 1x1 maps
        (models.paper, 8, "its MaxPool2D #4 (layer #11) would get 1x1 maps", 32),
        # 30 -> 15 -> 7 -> 3 -> 1: the fifth
        (models.paper, 30, "its MaxPool2D #5 (layer #14) would get 1x1 maps", 32),
        (models.paper13, 4, "its MaxPool2D #3 (layer #8) would get 1x1 maps", 8),
        (models.paper_bn, 8, "its MaxPool2D #4 (layer #21) would get 1x1 maps", 16),
        (models.paper_res, 1, "its MaxPool2D #1 (layer #3) would get 1x1 maps", 2),
    ],
)
def test_a_size_too_small_names_the_layer_and_the_smallest_size(build, size, layer, smallest):
    with pytest.raises(ShapeError) as e:
        build(num_classes=3, image_size=size)
    name = build.__name__
    assert str(e.value).startswith(f"{name} cannot take {size}x{size} images: {layer} (")
    assert str(e.value).endswith(f"; the smallest size it takes is {smallest}x{smallest}")
    assert e.value.smallest == smallest
    # the smallest size does fit, one less does not
    assert build(num_classes=3, image_size=smallest).output_shape((3, smallest, smallest)) == (3,)
    if smallest > 1:
        with pytest.raises(ShapeError):
            build(num_classes=3, image_size=smallest - 1)


def test_paper_sizes_its_dense_layer_from_the_shapes():
    # 33 -> 16 -> 8 -> 4 -> 2 -> 1: 64 channels of 1x1 into Dense; 64 -> 2x2: the paper's 256
    assert models.paper(image_size=33)[-3].in_features == 64
    assert models.paper(image_size=64)[-3].in_features == 256
    assert models.paper13(image_size=64)[-3].in_features == 4096
    # global average pooling: paper_bn and paper_res take any size their pools allow
    for size in (16, 30, 64, 97):
        assert models.paper_bn(num_classes=5, image_size=size).output_shape((3, size, size)) == (5,)
    for size in (2, 9, 64):
        assert models.paper_res(num_classes=5, image_size=size).output_shape((3, size, size)) == (
            5,
        )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["--image-size", "8"],
            "error: --image-size 8 is too small for paper: its MaxPool2D #4 (layer #11) would "
            "get 1x1 maps (MaxPool2D(2, stride=2): input 1x1 is smaller than the pool window); "
            "the smallest size it takes is 32x32",
        ),
        (
            ["--image-size", "30"],
            "error: --image-size 30 is too small for paper: its MaxPool2D #5 (layer #14)",
        ),
        (
            ["--preset", "paper_bn", "--image-size", "8", "--screening"],
            "error: --image-size 8 is too small for paper_bn: its MaxPool2D #4 (layer #21)",
        ),
        (
            ["--group-by", "(a)(b)"],
            "error: --group-by: group_by '(a)(b)' must have exactly one group (...) that names "
            "the group, it has 2; or give 'auto' or 'none'",
        ),
        (["--group-by", "(unclosed"], "error: --group-by: group_by '(unclosed' is not a regular"),
    ],
)
def test_train_refuses_before_any_work(argv, expected, tmp_path, capsys):
    out = tmp_path / "run"
    missing = tmp_path / "no-such-data"  # never looked at: the check comes first
    code = main(["train", *argv, "--data", str(missing), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert not out.exists()


# ----------------------------------------------------------------------------- loss watch


def watched(losses, start=None, history=None):
    """LossWatch over epochs of the given mean losses; the first step's loss is `start`."""
    said = []
    watch = LossWatch(said.append)
    watch.on_train_begin(None, history or [])
    watch.on_train_batch_end(1, {"loss": losses[0] if start is None else start})
    for epoch, loss in enumerate(losses, start=len(history or []) + 1):
        assert watch.on_epoch_end(epoch, {"train_loss": loss}, None) is False  # never stops
    return said


def test_loss_watch_rule():
    assert watched([2.3, 1.5, 0.9, 0.5]) == []  # learning
    assert watched([2.3, 50.0, 200.0]) == []  # 87x the start, 4x the previous epoch: quiet
    said = watched([2.3, 230.0])  # exactly 100x the first step's loss
    assert said == [
        "warning: the training loss grew to 230 in epoch 2, 100 times the first step's 2.3: "
        "the learning rate may be too high (the loss is still finite, so training goes on)"
    ]
    # epoch 1 itself: its mean against the untrained model's first step
    assert len(watched([5e30], start=1.1)) == 1
    # each hundredfold once: 1e3 warns, 1e4 not (10x), 1e5 warns again (100x the last warning)
    said = watched([2.0, 1e3, 1e4, 1e5], start=2.0)
    assert [s.split(" in epoch ")[1][0] for s in said] == ["2", "4"]
    assert "100 times the last warning's 1000" in said[1]
    # a hundredfold jump late in training that stays below the start: quiet
    assert watched([2.3, 0.5, 0.001, 0.1]) == []
    # above the start and 100x the previous epoch
    said = watched([2.3, 0.02, 3.0])
    assert len(said) == 1 and "150 times epoch 2's 0.02" in said[0]
    # a resumed run compares with its first epoch's mean and its last epoch
    history = [{"train_loss": 2.0}, {"train_loss": 1.5}]
    assert len(watched([250.0], history=history)) == 1  # 125x the first epoch's 2.0
    assert watched([140.0], history=history) == []  # 70x it, 93x the last epoch's 1.5


def test_fit_warns_of_an_exploding_but_finite_loss():
    ds = synthetic(3, 12, 16, seed=0)
    model = models.paper13(num_classes=3, image_size=16)
    lines = []
    opt = minicnn.Adam(model.parameters(), lr=100.0)  # far too high: logits of 1e20 and more
    history = minicnn.fit(model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, ds.val, epochs=2,
                          batch_size=16, progress=False, print_fn=lines.append)  # fmt: skip
    assert len(history) == 2 and all(np.isfinite(r["train_loss"]) for r in history)
    assert history[0]["train_loss"] > 1e10
    warnings = [line for line in lines if line.startswith("warning: the training loss grew")]
    assert len(warnings) >= 1 and "in epoch 1," in warnings[0]
    assert lines.index(warnings[0]) == 1  # right after epoch 1's line
    # a sane rate: no warning
    model = models.paper13(num_classes=3, image_size=16)
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    lines = []
    minicnn.fit(model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, ds.val, epochs=2,
                batch_size=16, progress=False, print_fn=lines.append)  # fmt: skip
    assert not any("warning" in line for line in lines)


def test_train_command_warns_and_records_one_process(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "paper13", "--image-size", "16", "--classes", "3"]
    argv += ["--per-class", "10", "--epochs", "2", "--lr", "100", "--no-progress"]
    code = main([*argv, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0  # a finite loss trains on
    assert "warning: the training loss grew to " in printed
    results = json.loads((out / "results.json").read_text())
    assert results["data_parallel"]["ranks"] == 1
    assert results["data_parallel"]["threads"] >= 1
    assert results["history"][-1]["train_loss"] > 1e10  # one step per epoch: epoch 2 explodes
