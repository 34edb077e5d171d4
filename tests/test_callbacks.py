"""The pieces that plug into fit, each on its own: CallbackList, Progress, NonFiniteGuard,
Checkpoint; and fit with callbacks of every vintage."""

import io
import sys

import numpy as np
import pytest

import minicnn
from minicnn.data import synthetic
from minicnn.io import ModelFileError
from minicnn.training import (
    CallbackList,
    Checkpoint,
    NonFiniteGuard,
    Progress,
    TrainingDiverged,
    fit,
    format_row,
)

ROW = {"epoch": 2, "train_loss": 1.5, "train_acc": 0.25, "val_loss": 1.25, "val_acc": 0.5,
       "seconds": 2.0, "lr": 1e-3}  # fmt: skip


class Recorder:
    """Records each hook it gets; stops after epoch `stop_at`."""

    def __init__(self, name, calls, stop_at=None):
        self.name, self.calls, self.stop_at = name, calls, stop_at

    def on_train_begin(self, model, history):
        self.calls.append((self.name, "train_begin", len(history)))

    def on_epoch_begin(self, epoch, model):
        self.calls.append((self.name, "epoch_begin", epoch))

    def on_backward_end(self, step, logs, model):
        self.calls.append((self.name, "backward_end", step))

    def on_train_batch_end(self, step, logs):
        self.calls.append((self.name, "batch_end", step))

    def on_epoch_end(self, epoch, logs, model):
        self.calls.append((self.name, "epoch_end", epoch))
        return epoch == self.stop_at

    def on_train_end(self, model, history):
        self.calls.append((self.name, "train_end", len(history)))


def test_callback_list_calls_every_hook_in_order_and_stops_when_any_says_so():
    calls, said = [], []
    hooks = CallbackList([Recorder("a", calls, stop_at=1), Recorder("b", calls)], said.append)
    hooks.on_train_begin(None, [])
    hooks.on_backward_end(3, {}, None)
    assert hooks.on_epoch_end(1, {}, None) is True
    assert hooks.on_epoch_end(2, {}, None) is False
    assert calls == [("a", "train_begin", 0), ("b", "train_begin", 0), ("a", "backward_end", 3),
                     ("b", "backward_end", 3), ("a", "epoch_end", 1), ("b", "epoch_end", 1),
                     ("a", "epoch_end", 2), ("b", "epoch_end", 2)]  # fmt: skip
    assert said == ["stopping early after epoch 1"]
    only_old_hooks = type("Old", (), {"on_epoch_end": lambda self, e, logs, m: False})()
    CallbackList([only_old_hooks]).on_train_end(None, [])  # hooks it lacks are not called


@pytest.fixture(scope="module")
def ds():
    return synthetic(num_classes=3, per_class=12, image_size=32, seed=2)


def test_fit_calls_the_hooks_per_batch_and_epoch(ds):
    model = minicnn.models.paper(num_classes=3, image_size=32, dropout=0.0)
    calls = []
    history = fit(model, minicnn.SoftmaxCrossEntropy(), minicnn.SGD(model.parameters(), 1e-3),
                  ds.train, None, epochs=3, batch_size=16, progress=False, print_fn=None,
                  callbacks=[Recorder("r", calls, stop_at=2)])  # fmt: skip
    steps = -(-len(ds.train) // 16)
    assert [row["epoch"] for row in history] == [1, 2]
    per_batch = [c for step in range(1, steps + 1)
                 for c in (("r", "backward_end", step), ("r", "batch_end", step))]  # fmt: skip
    epoch = lambda e: [("r", "epoch_begin", e), *per_batch, ("r", "epoch_end", e)]  # noqa: E731
    assert calls == [("r", "train_begin", 0), *epoch(1), *epoch(2), ("r", "train_end", 2)]


def test_progress_line_always_and_bar_only_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    logs = {"size": 8, "loss": 1.0, "hits": 4}
    for stream, bar in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        lines = []
        progress = Progress(3, 16, bar=True, print_fn=lines.append)
        assert progress.bar is bar
        progress.on_epoch_begin(2, None)
        progress.on_train_batch_end(1, logs)
        progress.on_epoch_end(2, ROW, None)
        assert lines == [format_row(ROW, 3, 16)]
        assert ("\r" in stream.getvalue()) is bar  # a log file gets no carriage returns
    assert format_row(ROW, 3, 16) == (
        "epoch   2/3  train loss 1.5000 acc  25.0%  val loss 1.2500 acc  50.0%    2.0 s (8 img/s)"
    )
    huge = dict(ROW, train_loss=5.370053572806175e24)  # a diverging loss, still finite
    assert format_row(huge, 3, 16).startswith("epoch   2/3  train loss 5.37e+24 acc  25.0%")


def test_a_redirected_run_writes_no_progress_frames(ds, capsys):
    model = minicnn.models.paper(num_classes=3, image_size=32)
    fit(model, minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters()), ds.train,
        ds.val, epochs=1, batch_size=16)  # fmt: skip
    out, err = capsys.readouterr()
    assert "\r" not in err and "\r" not in out
    assert out.startswith("epoch   1/1  train loss") and out.count("\n") == 1


def test_guard_names_the_step_and_the_checkpoint_kept():
    guard = NonFiniteGuard("run/checkpoint.npz")
    guard.on_train_begin(None, [{"epoch": 4}])
    guard.on_epoch_begin(5, None)
    guard.on_backward_end(1, {"loss": 2.0}, None)  # finite: nothing
    kept = r"the last good checkpoint, run/checkpoint.npz \(epoch 4\), is kept"
    with pytest.raises(TrainingDiverged, match=r"became inf at epoch 5, step 7; stopped; " + kept):
        guard.on_backward_end(7, {"loss": float("inf")}, None)
    model = minicnn.models.paper(num_classes=3, image_size=32)
    assert guard.on_epoch_end(5, {}, model) is False and guard.last_good == 5
    model.parameters()[0].data[0, 0, 0, 0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"NaN or infinite in epoch 6.*\(epoch 5\) is kept"):
        guard.on_epoch_end(6, {}, model)
    fresh = NonFiniteGuard(None)
    fresh.on_train_begin(None, [{"epoch": 4}])
    fresh.on_epoch_begin(5, None)
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet"):
        fresh.on_backward_end(1, {"loss": float("nan")}, None)


def test_checkpoint_writes_and_restores_on_its_own(tmp_path):
    path = tmp_path / "c.npz"
    model = minicnn.models.paper_bn(num_classes=3, image_size=16, seed=1)
    optimizer = minicnn.Adam(model.parameters(), lr=1e-3)
    schedule = minicnn.schedules.Cosine(optimizer, total_steps=10)
    saver = Checkpoint(path, optimizer, seed=3, schedule=schedule)
    assert saver.restore(model) == []  # no file yet: a new run
    history = [{"epoch": 1, "train_loss": 1.0}]
    for _ in range(4):
        schedule.step()
    model.layers[1].running_var[:] = 2.5
    saver.on_train_begin(model, history)
    saver.on_epoch_end(1, history[0], model)
    again = minicnn.models.paper_bn(num_classes=3, image_size=16, seed=2)
    opt2 = minicnn.Adam(again.parameters(), lr=1e-3)
    sched2 = minicnn.schedules.Cosine(opt2, total_steps=10)
    said = []
    assert Checkpoint(path, opt2, 3, sched2, say=said.append).restore(again) == history
    assert said == [f"resumed from {path} after epoch 1"] and sched2.k == 4
    assert all(np.array_equal(a.data, b.data) for a, b in zip(model.parameters(),
                                                               again.parameters()))  # fmt: skip
    assert np.array_equal(again.layers[1].running_var, model.layers[1].running_var)
    assert Checkpoint(path, opt2, 3, sched2).restore(again, resume=False) == []
    with pytest.raises(ModelFileError, match="trained with seed 3, not 4"):
        Checkpoint(path, opt2, 4, sched2).restore(again)
    with pytest.raises(ModelFileError, match="trained with a learning-rate schedule"):
        Checkpoint(path, opt2, 3, None).restore(again)


def test_the_older_module_keeps_every_name():
    import minicnn.train
    import minicnn.training

    for name in ("EarlyStopping", "SaveBest", "TrainingDiverged", "check_split", "epoch_seed",
                 "evaluate", "fit", "format_row", "num_classes_of", "targets_for"):  # fmt: skip
        assert getattr(minicnn.train, name) is getattr(minicnn.training, name)
    assert minicnn.fit is minicnn.training.fit and minicnn.evaluate is minicnn.training.evaluate
    assert (
        minicnn.train.epoch_seed(0, 1)
        == minicnn.train.epoch_seed(0, 1)
        != minicnn.train.epoch_seed(0, 2)
    )
