"""fit: the training loop. For each epoch, for each mini-batch: forward, loss, backward,
optimizer step, schedule step; then evaluate on the validation split and record a row.

Everything else plugs in as a callback (callbacks.py lists the hooks), each in its own
module: progress.py, checkpoint.py, preemption.py (SIGTERM, SIGINT), early_stopping.py,
save_best.py, guard.py, and, on several MPI ranks, minicnn.distributed.DataParallel.
"""

import itertools
import time

import numpy as np

from .. import heads
from ..data import batches
from ..distributed import DataParallel, group, stop_all_ranks_on_error
from .callbacks import CallbackList
from .checkpoint import Checkpoint
from .checks import check_inputs
from .evaluate import evaluate, normalize_of, targets_for
from .guard import NonFiniteGuard, TrainingDiverged
from .preemption import Preemption, TrainingInterrupted
from .progress import Progress
from .watch import LossWatch


def epoch_seed(seed, epoch):
    """The shuffle / augmentation seed of an epoch, a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


# under MPI: a rank that fails stops them all; these two every rank raises at the same step
@stop_all_ranks_on_error(TrainingDiverged, TrainingInterrupted)
def fit(
    model,
    loss_fn,
    optimizer,
    train,
    val=None,
    epochs=20,
    batch_size=32,
    *,
    seed=0,
    augment=None,
    normalize=None,
    balance=False,
    callbacks=(),
    checkpoint=None,
    resume=False,
    schedule=None,
    distributed=None,
    sync_batchnorm=False,
    progress=True,
    print_fn=print,
):
    """Train `model` for `epochs` epochs and return the history.

    Inputs:
    - model: Sequential with input_shape; loss_fn: SoftmaxCrossEntropy or BinaryCrossEntropy
    - optimizer: Adam, AdamW or SGD over model.parameters() (or its parameter groups)
    - train, val: Split (val may be None); labels are checked against the model's classes and
      image shapes against its input before the first step
    - seed: shuffle / augmentation seed (epoch e uses epoch_seed(seed, e))
    - augment: None or a callable augment(x, rng) such as minicnn.data.Augment
    - normalize: (mean, std) per channel; None takes model.mean / model.std when set
    - balance: each epoch draws len(train) images with replacement, every class equally
      likely (minicnn.data.batches' balance), instead of a shuffle of the split
    - callbacks: objects with any of the hooks of minicnn.training.callbacks, e.g.
      on_epoch_end(epoch, logs, model) -> True to stop (SaveBest, EarlyStopping)
    - checkpoint: path of checkpoint.npz, written (atomically) after every epoch. With it,
      SIGTERM or SIGINT (Ctrl-C) stops the run after the step in progress, with the
      checkpoint of that step, by raising TrainingInterrupted (minicnn.training.preemption)
    - resume: continue from `checkpoint` when it exists (epochs counts the total), at the
      step where a signal stopped it
    - schedule: None or a minicnn.schedules object over `optimizer`; fit calls its step()
      after every optimizer step, and the checkpoint keeps its state
    - distributed: data-parallel over MPI ranks (minicnn.distributed): None trains on every
      rank when launched by mpiexec / srun with more than one, True insists on MPI, False
      trains in this process alone. Each global batch of batch_size images is cut into one
      part per rank; rank 0 alone prints and writes the checkpoint
    - sync_batchnorm: with several ranks, BatchNorm normalises with the statistics of the whole
      global batch (as one process does) instead of each rank's part
    - progress: a tqdm bar per epoch (on a terminal); print_fn: where the per-epoch line goes
      (None: silent)

    Returns:
    - history: list of dicts, one per epoch: epoch (1-based), train_loss, train_acc,
      val_loss, val_acc (None without val), seconds, lr (the rate of the epoch's last step)

    Raises TrainingDiverged when a loss is NaN or infinite; the last checkpoint stays as it was.
    Raises TrainingInterrupted after a signal (its checkpoint, signal, epoch and step).
    """
    ranks = group(distributed)  # the MPI ranks, or this process alone
    say = print_fn if print_fn and ranks.is_root else None
    parallel = DataParallel(ranks, optimizer, seed, sync_batchnorm, say) if ranks.size > 1 else None
    if parallel:  # every rank the same data and settings, or one error on all of them
        parallel.agree(model, train, val, batch_size=batch_size, epochs=epochs, seed=seed,
                       lr=float(optimizer.lr), sync_batchnorm=sync_batchnorm,
                       augment=augment is not None)  # fmt: skip
    check_inputs(model, optimizer, train, val)
    normalize = normalize_of(model, normalize)

    def train_batches(epoch, skip=0, part=None):  # the epoch's shuffled, augmented batches
        every = batches(train, batch_size, seed=epoch_seed(seed, epoch), augment=augment,
                        normalize=normalize, part=part, balance=balance)  # fmt: skip
        # after the `skip` steps a stopped run took: made and dropped, so that the random
        # draws of the rest are those of the uninterrupted run
        return itertools.islice(every, skip, None)

    def scores(split):  # evaluate() of the validation split
        return evaluate(model, split, loss_fn, normalize=normalize)

    def validate(model):
        v = scores(val) if val is not None and len(val) else {"loss": None, "accuracy": None}
        return v["loss"], v["accuracy"]

    saver = Checkpoint(checkpoint, optimizer, seed, schedule, ranks, say) if checkpoint else None
    history = saver.restore(model, resume) if saver else []
    stopper = Preemption(saver) if saver else None  # SIGTERM, SIGINT: stop after a step, saved
    hooks = [
        NonFiniteGuard(checkpoint),
        Progress(epochs, len(train), progress and ranks.is_root, say),
        LossWatch(say),  # a loss grown a hundredfold, still finite: one warning line
    ]
    step_loss = loss_fn
    if parallel:  # each rank its part of every batch and of the validation split
        train_batches = parallel.batches(train_batches, len(train), batch_size)
        validate, step_loss = parallel.validate(val, scores), parallel.shared(loss_fn)
        hooks.insert(0, parallel)  # first: the gradients are summed before the NaN guard
        parallel.preemption = stopper  # each rank's vote to stop is summed with the gradients
    hooks = CallbackList([*hooks, *callbacks, *([saver, stopper] if saver else [])], say)
    return train_loop(model, step_loss, optimizer, schedule, epochs, train_batches, validate,
                      history, hooks, resumed=saver.in_epoch if saver else None)  # fmt: skip


def train_loop(model, loss_fn, optimizer, schedule, epochs, train_batches, validate, history,
               hooks, resumed=None):  # fmt: skip
    """The loop itself, over epochs len(history) + 1 .. epochs; returns the history.

    train_batches(epoch, skip) -> the epoch's (x, y) mini-batches after its first `skip`;
    validate(model) -> (val_loss, val_acc); history: the rows so far; hooks: a CallbackList;
    resumed: EpochSums.state() of the epoch a stopped run was inside (from its checkpoint),
    or None.
    """
    hooks.on_train_begin(model, history)
    try:
        if hooks.stopped(history):  # a resumed run that had stopped early
            return history
        for epoch in range(len(history) + 1, epochs + 1):
            sums = EpochSums.start(epoch, resumed)  # zeros, or where a stopped run left them
            hooks.on_epoch_begin(epoch, model)
            batches = train_batches(epoch, skip=sums.step)  # the steps not taken yet
            for step, (x, y) in enumerate(batches, start=sums.step + 1):
                logits = model.forward(x, training=True)  # (N, K)
                loss = loss_fn.forward(logits, targets_for(loss_fn, logits, y))
                model.backward(loss_fn.backward())  # every trainable Parameter's .grad
                hits = int((heads.predictions(logits, model.output) == y).sum())
                logs = {"size": len(y), "loss": loss, "hits": hits}
                hooks.on_backward_end(step, logs, model)  # e.g. the NaN guard
                logs["lr"] = float(optimizer.lr)  # the rate of this step
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                sums.add(step, logs)
                logs["sums"] = sums  # the epoch so far (a checkpoint inside it keeps them)
                hooks.on_train_batch_end(step, logs)

            row = sums.row()  # epoch, train_loss, train_acc
            row["val_loss"], row["val_acc"] = validate(model)
            row["seconds"], row["lr"] = sums.seconds(), sums.lr
            history.append(row)
            if hooks.on_epoch_end(epoch, row, model):  # e.g. early stopping
                break
    finally:
        hooks.on_train_end(model, history)
    return history


class EpochSums:
    """The running sums of an epoch for its history row: the steps taken, the images seen,
    their summed loss and hits, the last step's learning rate and the seconds spent.

    A run stopped inside an epoch keeps state() in its checkpoint; EpochSums.start gives
    them back to the resumed epoch, which adds its steps to them in the same order, so the
    row is the one of an uninterrupted run.
    """

    def __init__(self, epoch, step=0, seen=0, loss_sum=0.0, hits=0, lr=None, seconds=0.0):
        self.epoch, self.step, self.seen, self.loss_sum = epoch, step, seen, loss_sum
        self.hits, self.lr, self.before, self.t0 = hits, lr, seconds, time.perf_counter()

    @classmethod
    def start(cls, epoch, resumed=None):
        """Zeros for `epoch`, or the sums of `resumed` (a state() dict) if it is this epoch's."""
        return cls(**resumed) if resumed and resumed["epoch"] == epoch else cls(epoch)

    def add(self, step, logs):
        """Add a step's logs: size, loss (the batch's mean), hits, lr."""
        self.step, self.seen = step, self.seen + logs["size"]
        self.loss_sum += logs["loss"] * logs["size"]
        self.hits += logs["hits"]
        self.lr = logs["lr"]

    def seconds(self):
        return self.before + time.perf_counter() - self.t0

    def row(self):
        return {"epoch": self.epoch, "train_loss": self.loss_sum / self.seen,
                "train_acc": self.hits / self.seen}  # fmt: skip

    def state(self):
        """JSON-ready: the arguments that make these sums again (floats round-trip exactly)."""
        return {"epoch": self.epoch, "step": self.step, "seen": int(self.seen),
                "loss_sum": float(self.loss_sum), "hits": int(self.hits),
                "lr": self.lr, "seconds": self.seconds()}  # fmt: skip
