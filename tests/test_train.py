"""fit / evaluate on a small network and small generated data: it learns, it checks its
input, it resumes bit for bit, and a NaN loss stops it without touching the checkpoint."""

import csv

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn.data import Split, channel_stats, synthetic
from minicnn.io import load_checkpoint, write_history_csv
from minicnn.optim import biases_and_norms
from minicnn.plots import plot_curves
from minicnn.schedules import Cosine
from minicnn.train import EarlyStopping, SaveBest, TrainingDiverged, evaluate, fit


@pytest.fixture(scope="module")
def ds():
    return synthetic(num_classes=4, per_class=60, image_size=32, seed=1)


def make_model(ds, seed=0, dropout=0.2, output="softmax"):
    model = minicnn.models.paper(
        num_classes=ds.num_classes, image_size=32, dropout=dropout, seed=seed, output=output
    )
    model.class_names = ds.class_names
    model.mean, model.std = channel_stats(ds.train)
    return model


def test_fit_learns_and_evaluate_reports(ds):
    model = make_model(ds)
    opt = minicnn.Adam(model.parameters(), lr=2e-3)
    loss_fn = minicnn.SoftmaxCrossEntropy()
    history = fit(model, loss_fn, opt, ds.train, ds.val, epochs=6, batch_size=16, progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "lr"}
    assert set(history[0]) == keys and all(row["lr"] == 2e-3 for row in history)
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert history[-1]["train_acc"] > history[0]["train_acc"] + 0.3
    assert history[-1]["val_acc"] >= 0.7  # chance is 0.25

    result = evaluate(model, ds.test, loss_fn)
    N = len(ds.test)
    assert result["probs"].shape == (N, 4)
    np.testing.assert_allclose(result["probs"].sum(axis=1), 1, rtol=1e-5)
    assert result["predictions"].shape == (N,)
    assert result["accuracy"] == pytest.approx(np.mean(result["predictions"] == ds.test.labels))
    assert result["accuracy"] >= 0.7
    assert result["loss"] < history[0]["val_loss"]
    assert "top5" not in result  # only for more than 5 classes
    # the stored preprocessing gives the same answer from uint8 images
    np.testing.assert_allclose(model.predict_proba(ds.test.images), result["probs"], rtol=1e-5)


def test_evaluate_top5_for_many_classes():
    many = synthetic(num_classes=7, per_class=10, image_size=32, seed=0)
    model = minicnn.models.paper(num_classes=7, image_size=32)
    result = evaluate(model, many.val)
    labels = many.val.labels
    top5 = np.argsort(-result["probs"], axis=1, kind="stable")[:, :5]
    assert result["top5"] == pytest.approx(np.mean((top5 == labels[:, None]).any(axis=1)))
    assert result["accuracy"] == pytest.approx(np.mean(result["probs"].argmax(1) == labels))
    assert result["loss"] is None


def test_sigmoid_head_trains_on_two_classes():
    two = synthetic(num_classes=2, per_class=60, image_size=32, seed=3)
    model = make_model(two, output="sigmoid")
    assert model.output_shape(model.input_shape) == (1,)
    loss_fn = minicnn.BinaryCrossEntropy(pos_weight=1.5)
    opt = minicnn.Adam(model.parameters(), lr=2e-3)
    history = fit(model, loss_fn, opt, two.train, two.val, epochs=5, batch_size=16, progress=False)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    result = evaluate(model, two.test, loss_fn)
    assert result["probs"].shape == (len(two.test), 2)
    assert result["accuracy"] >= 0.8


def test_bad_labels_and_shapes_fail_before_training(ds):
    model = make_model(ds)
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    before = [p.data.copy() for p in model.parameters()]
    bad = Split(ds.train.images, np.where(ds.train.labels == 3, 4, ds.train.labels))
    with pytest.raises(ValueError, match=r"train split has labels outside .* 4 classes \[0, 3\]"):
        fit(model, minicnn.SoftmaxCrossEntropy(), opt, bad, ds.val, epochs=1, progress=False)
    small = Split(ds.train.images[:, :, :16, :16], ds.train.labels)
    with pytest.raises(ValueError, match=r"shape \(3, 16, 16\).*expects \(3, 32, 32\)"):
        fit(model, minicnn.SoftmaxCrossEntropy(), opt, small, ds.val, epochs=1, progress=False)
    gray = Split(ds.val.images[:, :1], ds.val.labels)
    with pytest.raises(ValueError, match="val images"):
        fit(model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, gray, epochs=1, progress=False)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    assert opt.t == 0


def train_run(ds, tmp_path, name, epochs, resume=False, augment=True):
    """A small run with dropout 0.5 and augmentation, so every generator matters."""
    model = make_model(ds, dropout=0.5)
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    aug = minicnn.data.Augment(flip=0.5, shift=0.1, brightness=0.2) if augment else None
    history = fit(
        model,
        minicnn.SoftmaxCrossEntropy(),
        opt,
        ds.train,
        ds.val,
        epochs=epochs,
        batch_size=32,
        seed=7,
        augment=aug,
        checkpoint=str(tmp_path / f"{name}.npz"),
        resume=resume,
        progress=False,
        print_fn=None,
    )
    return model, opt, history


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(ds, tmp_path):
    full_model, full_opt, full_history = train_run(ds, tmp_path, "full", epochs=3)
    train_run(ds, tmp_path, "cut", epochs=2)  # "interrupted" after epoch 2
    model, opt, history = train_run(ds, tmp_path, "cut", epochs=3, resume=True)
    for a, b in zip(full_model.parameters(), model.parameters()):
        assert np.array_equal(a.data, b.data)
    assert opt.t == full_opt.t
    for a, b in zip(full_opt.m + full_opt.v, opt.m + opt.v):
        assert np.array_equal(a, b)
    drop = [layer for layer in model.layers if isinstance(layer, minicnn.Dropout)][0]
    full_drop = [layer for layer in full_model.layers if isinstance(layer, minicnn.Dropout)][0]
    assert drop.rng.bit_generator.state == full_drop.rng.bit_generator.state

    def strip(h):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in h]

    assert strip(history) == strip(full_history)
    assert len(history) == 3


def test_checkpoint_holds_epoch_history_and_optimizer(ds, tmp_path):
    _, opt, history = train_run(ds, tmp_path, "ck", epochs=1, augment=False)
    fresh = make_model(ds, dropout=0.5)
    fresh_opt = minicnn.Adam(fresh.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path / "ck.npz", fresh, fresh_opt)
    assert state["epoch"] == 1 and state["extra"] == {"seed": 7}
    assert state["history"][0]["train_loss"] == history[0]["train_loss"]
    assert fresh_opt.t == opt.t == int(np.ceil(len(ds.train) / 32))
    other = minicnn.models.paper(num_classes=5, image_size=32)
    with pytest.raises(ValueError, match="another architecture"):
        load_checkpoint(tmp_path / "ck.npz", other, minicnn.Adam(other.parameters()))


class NaNAt:
    """SoftmaxCrossEntropy that returns NaN at one step (counted across calls)."""

    def __init__(self, step):
        self.inner, self.step, self.calls = minicnn.SoftmaxCrossEntropy(), step, 0

    def forward(self, logits, targets):
        self.calls += 1
        loss = self.inner.forward(logits, targets)
        return float("nan") if self.calls == self.step else loss

    def backward(self):
        return self.inner.backward()


def test_nan_loss_stops_and_keeps_the_last_checkpoint(ds, tmp_path):
    model = make_model(ds)
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    path = tmp_path / "checkpoint.npz"
    steps_per_epoch = int(np.ceil(len(ds.train) / 32))
    loss_fn = NaNAt(steps_per_epoch + 3)  # epoch 2, step 3
    with pytest.raises(TrainingDiverged) as err:
        fit(model, loss_fn, opt, ds.train, None, epochs=3, batch_size=32, checkpoint=str(path),
            progress=False, print_fn=None)  # fmt: skip
    msg = str(err.value)
    assert "epoch 2, step 3" in msg and str(path) in msg and "(epoch 1)" in msg
    fresh = make_model(ds)
    state = load_checkpoint(path, fresh, minicnn.Adam(fresh.parameters()))
    assert state["epoch"] == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow on the way to NaN
def test_huge_learning_rate_diverges_with_a_message(ds, tmp_path):
    model = make_model(ds)
    opt = minicnn.Adam(model.parameters(), lr=1e30)
    path = tmp_path / "checkpoint.npz"
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d+.*no checkpoint"):
        fit(model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, ds.val, epochs=2,
            batch_size=16, checkpoint=str(path), progress=False, print_fn=None)  # fmt: skip
    assert not path.exists()


def test_save_best_and_early_stopping(ds, tmp_path):
    rows = [0.5, 0.7, 0.6, 0.65, 0.69]
    best = SaveBest(tmp_path / "model.npz")
    stop = EarlyStopping(monitor="val_acc", patience=3)
    model = make_model(ds)
    best.on_train_begin(model, [])
    stop.on_train_begin(model, [])
    stopped = []
    for epoch, acc in enumerate(rows, start=1):
        logs = {"epoch": epoch, "val_acc": acc}
        best.on_epoch_end(epoch, logs, model)
        stopped.append(stop.on_epoch_end(epoch, logs, model))
    assert best.best_epoch == 2 and best.best == 0.7
    assert stopped == [False, False, False, False, True]
    assert minicnn.load(tmp_path / "model.npz").metadata == {"epoch": 2, "val_acc": 0.7}
    resumed = EarlyStopping(monitor="val_acc", patience=3)  # after --resume: from the history
    resumed.on_train_begin(model, [{"epoch": e + 1, "val_acc": a} for e, a in enumerate(rows)])
    assert resumed.wait == 3


def test_resume_with_another_seed_is_refused(ds, tmp_path):
    train_run(ds, tmp_path, "seeded", epochs=1, augment=False)
    model = make_model(ds, dropout=0.5)
    with pytest.raises(ValueError, match="trained with seed 7, not 8"):
        fit(model, minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters()), ds.train,
            ds.val, epochs=2, seed=8, checkpoint=str(tmp_path / "seeded.npz"), resume=True,
            progress=False, print_fn=None)  # fmt: skip


class Crash:
    def on_epoch_end(self, epoch, logs, model):
        if epoch == 2:
            raise KeyboardInterrupt


def test_callbacks_run_before_the_checkpoint_is_written(ds, tmp_path):
    """A crash in SaveBest & co. leaves the previous epoch's checkpoint: resume replays."""
    model = make_model(ds)
    path = str(tmp_path / "crash.npz")
    with pytest.raises(KeyboardInterrupt):
        fit(model, minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters()), ds.train,
            None, epochs=3, checkpoint=path, callbacks=[Crash()], progress=False,
            print_fn=None)  # fmt: skip
    fresh = make_model(ds)
    assert load_checkpoint(path, fresh, minicnn.Adam(fresh.parameters()))["epoch"] == 1


def test_a_resumed_run_that_had_stopped_early_trains_no_more(ds, tmp_path):
    train_run(ds, tmp_path, "stopped", epochs=2, augment=False)
    model = make_model(ds, dropout=0.5)
    stop = EarlyStopping(monitor="no_such_metric", patience=2)  # 2 epochs without it: stop
    lines = []
    history = fit(model, minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters()),
                  ds.train, ds.val, epochs=5, seed=7, callbacks=[stop], resume=True,
                  checkpoint=str(tmp_path / "stopped.npz"), progress=False,
                  print_fn=lines.append)  # fmt: skip
    assert [row["epoch"] for row in history] == [1, 2]
    assert lines[-1] == "the run had already stopped early after epoch 2"


def bn_run(ds, tmp_path, name, epochs, resume=False, schedule=True):
    """BatchNorm, bias-free convolutions, AdamW with no_decay, cosine warm-up, smoothing."""
    rng = np.random.default_rng(3)
    layers = [
        minicnn.Conv2D(3, 8, 3, padding="same", rng=rng, bias=False),
        minicnn.BatchNorm2D(8),
        minicnn.ReLU(),
        minicnn.MaxPool2D(2),
        minicnn.Conv2D(8, 16, 3, padding="same", rng=rng, bias=False),
        minicnn.BatchNorm2D(16),
        minicnn.ReLU(),
        minicnn.AvgPool2D(2),
        minicnn.GlobalAvgPool2D(),
        minicnn.Dropout(0.3, rng=rng),
        minicnn.Dense(16, ds.num_classes, rng=rng, init="glorot"),
    ]
    model = minicnn.Sequential(layers, input_shape=(3, 32, 32))
    model.mean, model.std = channel_stats(ds.train)
    params = model.parameters()
    opt = minicnn.AdamW(params, lr=3e-3, weight_decay=0.05, no_decay=biases_and_norms(params))
    steps = 3 * int(np.ceil(len(ds.train) / 32))
    sched = Cosine(opt, total_steps=steps, warmup_steps=4) if schedule else None
    history = fit(
        model, minicnn.SoftmaxCrossEntropy(label_smoothing=0.1), opt, ds.train, ds.val,
        epochs=epochs, batch_size=32, seed=7, augment=minicnn.data.Augment(flip=0.5, shift=0.1),
        checkpoint=str(tmp_path / f"{name}.npz"), resume=resume, schedule=sched,
        progress=False, print_fn=None,
    )  # fmt: skip
    return model, opt, sched, history


def test_batchnorm_adamw_cosine_resume_is_bitwise_identical(ds, tmp_path):
    full_model, full_opt, full_sched, full_history = bn_run(ds, tmp_path, "full", epochs=3)
    bn_run(ds, tmp_path, "cut", epochs=2)  # "interrupted" after epoch 2
    model, opt, sched, history = bn_run(ds, tmp_path, "cut", epochs=3, resume=True)
    for a, b in zip(full_model.parameters(), model.parameters()):
        assert np.array_equal(a.data, b.data)
    for a, b in zip(full_model.layers, model.layers):
        if isinstance(a, minicnn.BatchNorm2D):
            assert np.array_equal(a.running_mean, b.running_mean)
            assert np.array_equal(a.running_var, b.running_var)
            assert not np.array_equal(a.running_var, np.ones_like(a.running_var))  # it moved
    for a, b in zip(full_opt.m + full_opt.v, opt.m + opt.v):
        assert np.array_equal(a, b)
    assert sched.k == full_sched.k == opt.t and opt.lr == full_opt.lr == 0.0  # cosine's end
    assert [row["lr"] for row in history] == [row["lr"] for row in full_history]
    per_epoch = sched.total_steps // 3  # the lr of an epoch is the rate of its last step
    assert [row["lr"] for row in history] == [sched.rate(e * per_epoch - 1) for e in (1, 2, 3)]

    def strip(h):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in h]

    assert strip(history) == strip(full_history)
    write_history_csv(tmp_path / "history.csv", history)
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["lr"]) for r in rows] == [row["lr"] for row in history]
    plot_curves(history, tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as img:
        assert img.size == (1500, 420)  # loss, accuracy and learning rate


def test_resume_needs_the_same_schedule(ds, tmp_path):
    bn_run(ds, tmp_path, "sched", epochs=1)
    with pytest.raises(ValueError, match="trained with a learning-rate schedule"):
        bn_run(ds, tmp_path, "sched", epochs=2, resume=True, schedule=False)


def test_views_are_the_image_and_its_mirror():
    x = np.arange(2 * 3 * 2 * 4, dtype=np.uint8).reshape(2, 3, 2, 4)
    (same,) = minicnn.data.augment.views(x)
    assert same is x
    plain, mirror = minicnn.data.augment.views(x, "flip")
    assert plain is x and mirror.flags.c_contiguous
    assert mirror[1, 2, 0].tolist() == x[1, 2, 0, ::-1].tolist()
    assert mirror[0, 0, 1, 0] == x[0, 0, 1, 3]
    with pytest.raises(ValueError, match="tta must be None or one of"):
        minicnn.data.augment.views(x, "rotate")


def test_evaluate_with_flip_averages_the_image_and_its_mirror(ds):
    model = make_model(ds, seed=2)
    loss_fn = minicnn.SoftmaxCrossEntropy(label_smoothing=0.1)
    plain = evaluate(model, ds.test, loss_fn)
    mirrored = Split(ds.test.images[..., ::-1], ds.test.labels)
    other = evaluate(model, mirrored, loss_fn)
    both = evaluate(model, ds.test, loss_fn, tta="flip")
    mean = (plain["probs"] + other["probs"]) / 2
    np.testing.assert_allclose(both["probs"], mean, rtol=1e-6)
    assert both["predictions"].tolist() == mean.argmax(1).tolist()
    assert both["accuracy"] == pytest.approx(np.mean(mean.argmax(1) == ds.test.labels))
    K, y = 4, ds.test.labels
    target = np.full((len(y), K), 0.1 / K)
    target[np.arange(len(y)), y] += 0.9
    assert both["loss"] == pytest.approx(-np.mean(np.sum(target * np.log(mean), axis=1)), 1e-5)
    # a random network sees a mirrored picture differently: the mean is not either view
    assert not np.allclose(both["probs"], plain["probs"], atol=1e-4)
    np.testing.assert_allclose(model.predict_proba(ds.test.images, tta="flip"), mean, rtol=1e-5)


def test_evaluate_with_flip_on_a_sigmoid_head():
    two = synthetic(num_classes=2, per_class=20, image_size=32, seed=3)
    model = make_model(two, seed=1, output="sigmoid")
    loss_fn = minicnn.BinaryCrossEntropy()
    plain = evaluate(model, two.val, loss_fn)
    other = evaluate(model, Split(two.val.images[..., ::-1], two.val.labels), loss_fn)
    both = evaluate(model, two.val, loss_fn, tta="flip")
    p1 = (plain["probs"][:, 1] + other["probs"][:, 1]) / 2
    np.testing.assert_allclose(both["probs"][:, 1], p1, rtol=1e-5)
    y = two.val.labels
    bce = -np.mean(y * np.log(p1) + (1 - y) * np.log(1 - p1))
    assert both["loss"] == pytest.approx(bce, rel=1e-4)
    assert both["predictions"].tolist() == (p1 > 0.5).astype(int).tolist()
