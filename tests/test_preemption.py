"""SIGTERM and SIGINT stop a run after a step, with that step's checkpoint, and --resume goes
on from it bit for bit; --resume refuses a folder without a checkpoint, or settings that
make another run, and names the settings that differ.

The signals are sent by the process to itself at a known step (tests/signal_at.py for the
command line), so every run stops at the same place."""

import json
import os
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn.cli.common import CommandError
from minicnn.cli.run_folder import check_resume
from minicnn.cli.train import resume_command
from minicnn.data import channel_stats, synthetic
from minicnn.io import RECORD_KEY, load_checkpoint
from minicnn.saving.atomic import atomic_savez
from minicnn.saving.checkpoint import checkpoint_info
from minicnn.saving.record import record_array
from minicnn.training.loop import EpochSums
from minicnn.training.preemption import Preemption, TrainingInterrupted

TESTS = os.path.dirname(os.path.abspath(__file__))
TINY = ["--per-class", "8", "--classes", "3", "--image-size", "32", "--epochs", "2"]
TINY += ["--batch-size", "8", "--augment", "--dropout", "0.5", "--no-progress"]


class SignalAt:
    """Send this process `signum` after step `step` of epoch `epoch` (as Slurm would)."""

    def __init__(self, epoch, step, signum=signal.SIGTERM):
        self.at, self.signum, self.epoch = (epoch, step), signum, None

    def on_epoch_begin(self, epoch, model):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs):
        if (self.epoch, step) == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def ds():
    return synthetic(num_classes=4, per_class=24, image_size=32, seed=1)


def run(ds, path, resume=False, callbacks=()):
    """2 epochs of 3 steps with dropout, augmentation and a cosine schedule: every piece of
    state a resumed step depends on."""
    model = minicnn.models.paper(num_classes=4, image_size=32, dropout=0.5, seed=0)
    model.mean, model.std = channel_stats(ds.train)
    opt = minicnn.Adam(model.parameters(), lr=1e-3)
    schedule = minicnn.schedules.Cosine(opt, total_steps=6, warmup_steps=1)
    history = minicnn.fit(
        model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, ds.val, epochs=2, batch_size=24,
        seed=7, augment=minicnn.data.Augment(flip=0.5, shift=0.1, brightness=0.2),
        checkpoint=str(path), resume=resume, schedule=schedule, callbacks=list(callbacks),
        progress=False, print_fn=None,
    )  # fmt: skip
    return model, opt, history


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_sigterm_inside_an_epoch_then_resume_is_bitwise_identical(ds, tmp_path):
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    full_model, full_opt, full_history = run(ds, tmp_path / "full.npz")
    with pytest.raises(TrainingInterrupted) as stop:
        run(ds, tmp_path / "cut.npz", callbacks=[SignalAt(2, 1)])
    e = stop.value
    assert (e.signum, e.epoch, e.step, e.exit_code) == (signal.SIGTERM, 2, 1, 143)
    assert e.checkpoint == str(tmp_path / "cut.npz")
    assert str(e) == f"SIGTERM: stopped after step 1 of epoch 2; its checkpoint is {e.checkpoint}"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    info = checkpoint_info(tmp_path / "cut.npz")
    assert (info["epoch"], info["step"]) == (1, 1)

    model, opt, history = run(ds, tmp_path / "cut.npz", resume=True)
    assert all(np.array_equal(a.data, b.data) for a, b in zip(full_model.parameters(),
                                                                model.parameters()))  # fmt: skip
    assert opt.t == full_opt.t == 2 * -(-len(ds.train) // 24)
    assert all(np.array_equal(a, b) for a, b in zip(full_opt.m + full_opt.v, opt.m + opt.v))
    drops = [[la.rng.bit_generator.state for la in m.layers if isinstance(la, minicnn.Dropout)]
             for m in (model, full_model)]  # fmt: skip
    assert drops[0] == drops[1]
    assert without_seconds(history) == without_seconds(full_history)  # the running sums too
    assert checkpoint_info(tmp_path / "cut.npz")["step"] == 0  # the epoch's end, as usual


class FakeCheckpoint:
    path = "ck.npz"

    def __init__(self):
        self.saved = []

    def save_step(self, model, sums):
        self.saved.append(sums.state())


def test_the_callback_stops_after_the_step_and_a_second_ctrl_c_at_once():
    ck = FakeCheckpoint()
    stopper = Preemption(ck)
    before = signal.getsignal(signal.SIGINT)
    stopper.on_train_begin("model", [])
    try:
        stopper.on_epoch_begin(3, "model")
        sums = EpochSums(3)
        sums.add(1, {"size": 8, "loss": 0.5, "hits": 2, "lr": 0.1})
        stopper.on_train_batch_end(1, {"sums": sums})  # no signal: goes on
        os.kill(os.getpid(), signal.SIGINT)  # the handler only notes it
        assert stopper.received == signal.SIGINT and ck.saved == []
        sums.add(2, {"size": 8, "loss": 0.25, "hits": 5, "lr": 0.1})
        with pytest.raises(TrainingInterrupted) as stop:
            stopper.on_train_batch_end(2, {"sums": sums})
        assert (stop.value.signum, stop.value.exit_code, stop.value.step) == (signal.SIGINT, 130, 2)
        saved = {k: v for k, v in ck.saved[0].items() if k != "seconds"}
        assert saved == {"epoch": 3, "step": 2, "seen": 16, "loss_sum": 6.0, "hits": 7,
                         "lr": 0.1}  # fmt: skip
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C again: now
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stopper.on_train_end("model", [])
    assert signal.getsignal(signal.SIGINT) is before


def test_under_mpi_the_summed_votes_decide_not_the_rank_alone():
    ck = FakeCheckpoint()
    stopper = Preemption(ck)
    stopper.on_epoch_begin(1, None)
    sums = EpochSums(1, step=4, seen=32)
    stopper.received = signal.SIGTERM  # this rank got it after its vote went out
    stopper.votes = [0.0, 0.0]
    stopper.on_train_batch_end(4, {"sums": sums})  # the others did not know: next step
    assert stopper.vote() == [1.0, 0.0] and ck.saved == []
    stopper.received, stopper.votes = None, [0.0, 1.0]  # another rank's Ctrl-C
    with pytest.raises(TrainingInterrupted) as stop:
        stopper.on_train_batch_end(5, {"sums": sums})
    assert stop.value.signum == signal.SIGINT and len(ck.saved) == 1


def test_a_checkpoint_of_an_older_minicnn_loads_and_resumes_at_its_epoch(ds, tmp_path):
    path = tmp_path / "old.npz"
    model, opt, _ = run(ds, path)
    with np.load(path) as f:  # as older versions wrote it: no step, no settings
        arrays = {k: f[k] for k in f.files}
    record = json.loads(str(arrays[RECORD_KEY]))
    del record["step"]
    arrays[RECORD_KEY] = record_array(record)
    atomic_savez(path, arrays)
    state = load_checkpoint(path, model, opt)
    assert (state["epoch"], state["step"]) == (2, 0)
    assert checkpoint_info(path) == {"epoch": 2, "step": 0, "settings": None}


# ----------------------------------------------------------------------------- command line


def cli(args, cwd, signal_at=None):
    """Start python -m minicnn train ARGS, or through tests/signal_at.py (epoch, step, signal);
    .communicate() ends it."""
    head = [sys.executable]
    if signal_at:
        head += [os.path.join(TESTS, "signal_at.py"), *map(str, signal_at), "0"]
    return subprocess.Popen([*head, "-m", "minicnn", "train", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finish(child):
    child.stdout_text, child.stderr_text = child.communicate(timeout=120)
    return child


def arrays(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files if k != RECORD_KEY}


def test_the_command_line_stops_with_143_and_says_how_to_resume(tmp_path):
    full = cli([*TINY, "--out", "full"], tmp_path)  # the two at once: the test's time
    cut = finish(cli([*TINY, "--out", "cut"], tmp_path, signal_at=(2, 1, "SIGTERM")))
    assert finish(full).returncode == 0, full.stderr_text
    assert cut.returncode == 143, cut.stderr_text
    line = cut.stdout_text.splitlines()[-1]
    command = shlex.join(["python", "-m", "minicnn", "train", *TINY, "--out", "cut", "--resume"])
    assert line == (
        "SIGTERM: stopped after step 1 of epoch 2; checkpoint cut/checkpoint.npz; "
        f"continue with: {command}"
    )
    assert sorted(os.listdir(tmp_path / "cut")) == ["checkpoint.npz", "model.npz"]  # no lock

    resumed = subprocess.run([sys.executable, *shlex.split(command)[1:]], cwd=tmp_path,
                             text=True, capture_output=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from cut/checkpoint.npz after step 1 of epoch 2" in resumed.stdout
    assert "note:" not in resumed.stdout  # the same settings
    for name in ("checkpoint.npz", "model.npz"):
        a, b = arrays(tmp_path / "full" / name), arrays(tmp_path / "cut" / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    rows = [(tmp_path / f / "history.csv").read_text().splitlines() for f in ("full", "cut")]
    assert [r.split(",")[:5] for r in rows[0]] == [r.split(",")[:5] for r in rows[1]]


def test_resume_command_for_each_way_of_starting_a_run():
    assert resume_command(["/x/minicnn/__main__.py", "train", "--out", "a b"]) == (
        "python -m minicnn train --out 'a b' --resume"
    )
    assert resume_command(["examples/train_paper.py", "--resume"]) == (
        "python examples/train_paper.py --resume"
    )
    assert resume_command(["/venv/bin/minicnn", "train"]) == "minicnn train --resume"


# ----------------------------------------------------------------------------- --resume checks


def settings(**changes):
    base = {"preset": "paper", "epochs": 20, "lr": 1e-4, "batch_size": 32, "seed": 0,
            "schedule": "none", "out": "runs/x", "resume": False, "no_progress": False}  # fmt: skip
    return base | changes


def stored(tmp_path, saved):
    """A folder whose checkpoint was trained with the settings `saved` (None: none stored)."""
    model = minicnn.models.paper(num_classes=2, image_size=32)
    if saved is not None:
        model.metadata = saved
    minicnn.io.save_checkpoint(tmp_path / "checkpoint.npz", model,
                               minicnn.Adam(model.parameters()), 3, [])  # fmt: skip
    return str(tmp_path)


def test_resume_without_a_checkpoint_is_one_error_naming_the_folder(tmp_path, capsys):
    with pytest.raises(CommandError, match=r"^--resume: no checkpoint in .*empty \(checkpoint"):
        check_resume(str(tmp_path / "empty"), settings())
    from minicnn.cli import main

    assert main(["train", "--resume", "--out", str(tmp_path / "none"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --resume: no checkpoint in {tmp_path / 'none'} (checkpoint.npz " + (
        "not found): check --out, or train without --resume to start a run\n"
    )
    assert not (tmp_path / "none").exists()


def test_resume_names_what_differs_and_the_value_used(tmp_path, capsys):
    folder = stored(tmp_path, settings())
    check_resume(folder, settings(resume=True, no_progress=True, out="elsewhere"))
    assert capsys.readouterr().out == ""  # where files go and how it shows: not compared
    check_resume(folder, settings(epochs=30, lr=5e-4))
    assert capsys.readouterr().out == (
        "note: --resume with other settings than the checkpoint's: --epochs 30 (checkpoint: "
        "20; used: 30), --lr 0.0005 (checkpoint: 0.0001; used: 0.0005)\n"
    )
    folder = stored(tmp_path, settings(schedule="cosine"))
    check_resume(folder, settings(schedule="cosine", lr=5e-4))
    assert "--lr 0.0005 (checkpoint: 0.0001; used: 0.0001 (the schedule goes on from its " in (
        capsys.readouterr().out
    )


def test_resume_refuses_settings_that_make_another_run(tmp_path):
    folder = stored(tmp_path, settings())
    with pytest.raises(CommandError) as refused:
        check_resume(folder, settings(batch_size=64, preset="paper_bn", lr=1e-3))
    assert str(refused.value) == (
        f"--resume: {folder}/checkpoint.npz was trained with --preset paper, --batch-size 32, "
        "not --preset paper_bn, --batch-size 64: resume with its settings, or train into "
        "another --out"
    )


def test_resume_from_a_checkpoint_without_settings_says_nothing_can_be_compared(tmp_path, capsys):
    check_resume(stored(tmp_path, None), settings(lr=1.0))
    out = capsys.readouterr().out
    assert out.startswith("note: ") and "holds no settings" in out
    assert "nothing can be compared; the options given now are used" in out
