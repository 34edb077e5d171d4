"""Run by tests/test_distributed.py under `mpiexec -n 2`: one scenario per command line.

    mpiexec -n 2 python tests/mpi_worker.py suite DIR     # the checks that end normally
    mpiexec -n 2 python tests/mpi_worker.py fail MODE DIR # rank 1 fails: raise, exit, kill, hang

`suite` prints one line `RESULTS {json}` on rank 0; the test asserts on it.
"""

import json
import os
import signal
import sys
import time
import zlib

import numpy as np
from signal_at import SignalAt

import minicnn
import minicnn.train
import minicnn.training.loop
from minicnn import distributed
from minicnn.data import Split
from minicnn.distributed import DistributedError
from minicnn.gradcheck import rel_error
from minicnn.layers.nested import walk
from minicnn.training.preemption import TrainingInterrupted

dist = distributed.world()
batches = minicnn.training.loop.batches


def split(n, seed=0, size=32):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
    return Split(images, rng.integers(0, 4, n))


def state(model):
    """Every weight and buffer of a model, as a list of arrays."""
    arrays = [p.data.copy() for p in model.parameters()]
    layers = [lay for _, lay in walk(model.layers)]  # the BatchNorms inside residual blocks too
    return arrays + [getattr(lay, n).copy() for lay in layers for n in lay_buffers(lay)]


def lay_buffers(layer):
    return getattr(layer, "BUFFERS", ())


def train(preset, dtype, distributed, batch_size=8, sync=False, fast=True, optimizer="Adam", **kw):
    """fit() of `preset` on 40 images, float32 or float64 batches; returns (state, history).

    optimizer "SGD" (momentum 0.9) or "Adam", lr 1e-3. Adam turns a rounding difference in a
    near-zero gradient entry into a move of up to lr (it divides by the entry's own size), so
    the comparisons of two ranks with one process use SGD; one Adam run bounds that effect.
    """
    minicnn.training.loop.batches = lambda *a, **k: (
        (x.astype(dtype), y) for x, y in batches(*a, **k)
    )
    try:
        model = preset(num_classes=4, image_size=32, seed=3, dropout=kw.pop("dropout", 0.0))
        model.astype(dtype).fast = fast
        model.class_names = kw.pop("class_names", None)
        if optimizer == "SGD":
            step = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        else:
            step = minicnn.Adam(model.parameters(), lr=1e-3)
        data = kw.pop("data", None) or split(5 * batch_size)
        val = kw.pop("val", None)
        history = minicnn.fit(model, minicnn.SoftmaxCrossEntropy(), step, data, val,
                              epochs=kw.pop("epochs", 1), batch_size=batch_size,
                              distributed=distributed, sync_batchnorm=sync, progress=False,
                              print_fn=None, **kw)  # fmt: skip
    finally:
        minicnn.training.loop.batches = batches
    return state(model), history


def same_bits_on_every_rank(arrays):
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return len(set(dist._gather_text(str(crc)))) == 1


def equal_runs(preset, dtype, **kw):
    """Two ranks on half a batch each against this process on the whole batch: rel. error."""
    one, _ = train(preset, dtype, False, **kw)
    two, _ = train(preset, dtype, None, **kw)
    return {
        "error": max(rel_error(a, b) for a, b in zip(one, two)),
        "same_bits_on_every_rank": same_bits_on_every_rank(two),
    }


def same_validation():
    """Two ranks score their halves of the validation split: the whole split's loss and
    accuracy, as one process gets them (float64 training, SGD)."""
    kw = dict(optimizer="SGD", epochs=2, val=split(13, seed=9))
    _, one = train(minicnn.models.paper, np.float64, False, **kw)
    _, two = train(minicnn.models.paper, np.float64, None, **kw)
    return {
        "loss": max(rel_error(a["val_loss"], b["val_loss"]) for a, b in zip(one, two)),
        "accuracy": [row["val_acc"] for row in one] == [row["val_acc"] for row in two],
    }


def refusal(fn):
    try:
        fn()
    except DistributedError as e:
        return str(e)
    return None


def resume(folder):
    """Resumed at 2 ranks: bit-identical to an uninterrupted 2-rank run; from a 1-process
    checkpoint, it goes on from that checkpoint's history."""
    paper, data = minicnn.models.paper, split(32, seed=5)
    kw = dict(dtype=np.float32, batch_size=8, data=data, dropout=0.2, seed=1)
    whole, _ = train(paper, distributed=None, epochs=2, **kw)
    path = os.path.join(folder, "two.npz")
    train(paper, distributed=None, epochs=1, checkpoint=path, **kw)
    resumed, _ = train(paper, distributed=None, epochs=2, checkpoint=path, resume=True, **kw)
    out = {"two_ranks_bit_identical": all(np.array_equal(a, b) for a, b in zip(whole, resumed))}
    path = os.path.join(folder, "one.npz")
    if dist.is_root:
        _, first = train(paper, distributed=False, epochs=1, checkpoint=path, **kw)
    _, history = train(paper, distributed=None, epochs=2, checkpoint=path, resume=True, **kw)
    out["from_one_process"] = [row["epoch"] for row in history]
    if dist.is_root:
        out["first_epoch_kept"] = history[0] == json.loads(json.dumps(first[0]))
    out["files_of_rank_1"] = dist._gather_text(" ".join(sorted(os.listdir(folder))))[1]
    return out


def preempted(folder):
    """SIGTERM reaches rank 1 alone after step 2 of epoch 2: its vote goes out with step 3's
    gradients, so both ranks stop after step 3; rank 0 writes. Resumed, the run ends with
    the bits of the uninterrupted one (Dropout and augmentation draw per-rank streams)."""
    paper, data = minicnn.models.paper, split(32, seed=5)
    aug = minicnn.data.Augment(flip=0.5, shift=0.1)
    kw = dict(dtype=np.float32, batch_size=8, data=data, dropout=0.5, seed=1, augment=aug)
    whole, _ = train(paper, distributed=None, epochs=2, **kw)
    path = os.path.join(folder, "preempted.npz")
    stop = None
    try:
        train(paper, distributed=None, epochs=2, checkpoint=path,
              callbacks=[SignalAt(2, 2, signal.SIGTERM, rank=1)], **kw)  # fmt: skip
    except TrainingInterrupted as e:
        stop = [e.epoch, e.step, e.exit_code]
    resumed, history = train(paper, distributed=None, epochs=2, checkpoint=path, resume=True,
                             **kw)  # fmt: skip
    return {
        "stopped": dist.gather(stop),
        "bit_identical": all(np.array_equal(a, b) for a, b in zip(whole, resumed)),
        "epochs": [row["epoch"] for row in history],
    }


def synced_then_plain(folder):
    """A synced run that saves its best model: the file holds plain BatchNorm2D records, and
    afterwards the layers are plain again (no method of the run left on them)."""
    model = minicnn.models.paper_bn(num_classes=4, image_size=32, seed=3)
    path = os.path.join(folder, "best.npz")
    minicnn.fit(model, minicnn.SoftmaxCrossEntropy(), minicnn.SGD(model.parameters(), 1e-3),
                split(16), split(8, seed=1), epochs=1, batch_size=8, sync_batchnorm=True,
                callbacks=[minicnn.train.SaveBest(path)], progress=False,
                print_fn=None)  # fmt: skip
    bns = minicnn.layers.norm.batchnorms(model)
    out = {"plain": not any({"moments", "sums"} & set(vars(bn)) for bn in bns)}
    if dist.is_root:
        out["saved"] = sorted({type(layer).__name__ for layer in minicnn.load(path)})
    return out


def suite(folder):
    paper, paper_bn = minicnn.models.paper, minicnn.models.paper_bn
    results = {
        "paper_float64": equal_runs(paper, np.float64, optimizer="SGD"),
        "paper_float32": equal_runs(paper, np.float32, optimizer="SGD"),
        "paper_float64_batch_7": equal_runs(paper, np.float64, batch_size=7, optimizer="SGD"),
        "paper_float64_adam": equal_runs(paper, np.float64),
        "paper_bn_sync_float64": equal_runs(paper_bn, np.float64, sync=True, optimizer="SGD"),
        "paper_bn_sync_float32": equal_runs(paper_bn, np.float32, sync=True, optimizer="SGD"),
        "paper_bn_sync_float64_reference": equal_runs(
            paper_bn, np.float64, sync=True, fast=False, optimizer="SGD"
        ),
    }
    results["paper_bn_per_rank"] = equal_runs(paper_bn, np.float64, optimizer="SGD")
    res = dict(optimizer="SGD", data=split(24, seed=2))  # BatchNorms inside the blocks
    for name, dtype, kw in (("sync_float64", np.float64, {"sync": True}),
                            ("sync_float32", np.float32, {"sync": True}),
                            ("sync_float64_reference", np.float64, {"sync": True, "fast": False}),
                            ("per_rank", np.float64, {})):  # fmt: skip
        results[f"paper_res_{name}"] = equal_runs(minicnn.models.paper_res, dtype, **res, **kw)
    mine = folder if dist.is_root else os.path.join(folder, "rank1")  # as if on two machines
    os.makedirs(mine, exist_ok=True)
    results["resume"] = resume(mine)
    results["synced_then_plain"] = synced_then_plain(mine)
    results["preempted"] = preempted(mine)
    results["validation"] = same_validation()
    results["batch_of_1"] = refusal(lambda: train(paper, np.float32, None, batch_size=1))
    theirs = split(40)
    theirs.images[7, 0, 0, 0] += dist.rank  # one pixel differs on rank 1
    results["other_pixels"] = refusal(lambda: train(paper, np.float32, None, data=theirs))
    names = ["cat", "dog", "fox", "owl" if dist.rank == 0 else "emu"]
    results["class_names"] = refusal(lambda: train(paper, np.float32, None, class_names=names))
    fewer = split(40 - dist.rank)  # one image fewer on rank 1
    results["fewer_images"] = refusal(lambda: train(paper, np.float32, None, data=fewer))
    if dist.is_root:
        print("RESULTS " + json.dumps(results), flush=True)


class Fail:
    """A callback that makes rank 1 fail after the first epoch, in the way `mode` says."""

    def __init__(self, mode):
        self.mode = mode

    def on_epoch_end(self, epoch, logs, model):
        if dist.rank != 1:
            return False
        if self.mode == "raise":
            raise RuntimeError("rank 1 fails on purpose")
        if self.mode == "exit":
            sys.exit(3)
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)  # hang: the others wait in the next collective
        return False


def fail(mode):
    train(minicnn.models.paper, np.float32, None, epochs=3, callbacks=[Fail(mode)])
    print("rank", dist.rank, "finished: the failure was not noticed", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "suite":
        suite(sys.argv[2])
    else:
        fail(sys.argv[2])
