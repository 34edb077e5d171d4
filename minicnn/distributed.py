"""Data-parallel training over MPI: each rank trains on its part of every global mini-batch.

    mpiexec -n 2 python examples/train_paper.py        # two processes on one machine
    srun -n 8 python examples/train_paper.py           # eight on a Slurm cluster

fit() does the following on P ranks (launched by mpiexec or srun; `fit(distributed=True)`
forces it, `distributed=False` turns it off), through the callback DataParallel below:

1. every rank draws the same shuffled global batch of B images (the shuffle seed is shared)
   and keeps its part of it, B // P images, the first B % P ranks one more;
2. forward and backward on the part, with the loss gradient scaled by the part's share of the
   global batch (n_r / B), so that a rank's gradients are its share of the global batch's mean;
3. allreduce_gradients: ONE exchange per step of all gradients in one flat buffer, summed
   (with the batch's loss and hits, and each rank's vote to stop on a signal: preemption.py);
4. the same optimizer step on every rank: weights and optimizer state stay identical on all
   ranks without being sent again. Rank 0 alone prints and writes files.
With sync_batchnorm, sync_batchnorm() makes each BatchNorm's statistics and sums those of the
global batch for the run (its gamma and beta gradients are then summed already).

The ranks themselves, with deterministic sums, are minicnn.mpi's Group. `import minicnn` never
imports mpi4py; without MPI, `rank`, `size`, `is_root` are 0, 1, True.
"""

import os
import sys

import numpy as np

from . import heads
from .fast import threads
from .layers.norm import batchnorms
from .losses import BinaryCrossEntropy
from .mpi import (  # noqa: F401 (the names of minicnn.distributed)
    TIMEOUT_ENV,
    DistributedError,
    Group,
    MPIGroup,
    group,
    launched_size,
    stop_all_ranks_on_error,
    world,
)

# ----------------------------------------------------------------------------- fit's part


class DataParallel:
    """fit's callback on P > 1 ranks: the four steps of the module's docstring.

    fit takes from it this rank's part of each global batch (batches), the loss scaled to the
    part's share of it (shared), and the validation of each rank's part of the split
    (validate); as a callback it starts the run (rank 0's weights everywhere, BatchNorm
    synchronised, a line `data-parallel: P ranks x T threads`), seeds each rank's Dropout,
    sums the gradients between backward and the step, and ends the synchronisation.
    preemption: fit's Preemption callback (or None), whose votes are summed with the gradients
    so that every rank stops after the same step.
    """

    def __init__(self, ranks, optimizer, seed=0, sync_batchnorm=False, say=None):
        self.group, self.optimizer, self.seed = ranks, optimizer, seed
        self.sync, self.say = sync_batchnorm, say
        self.summed = []  # Parameters whose gradients synchronised BatchNorm sums itself
        self.global_size = None  # images in the current global batch
        self.loss = None
        self.preemption = None

    def agree(self, model, train, val, **settings):
        """DistributedError on every rank unless they have the same data and settings."""
        self.group.agree(model, train, val, **settings)

    def batches(self, train_batches, n, batch_size):
        """train_batches(epoch, skip, part) -> the epoch's batches of this rank's part, after
        the first `skip`."""

        def parts(epoch, skip=0):
            own = train_batches(epoch, skip=skip, part=self.group.part)
            for step, (x, y) in enumerate(own, start=skip):
                self.global_size = min(batch_size, n - step * batch_size)
                if self.loss is not None:
                    self.loss.share = self.group.share(self.loss.loss_fn, y, self.global_size)
                yield x, y

        return parts

    def shared(self, loss_fn):
        """loss_fn times this rank's share of the global batch (set for each batch)."""
        self.loss = SharedLoss(loss_fn)
        return self.loss

    def validate(self, val, scores):
        """validate(model) -> (val_loss, val_acc) of the whole split from each rank's part;
        first the running statistics are averaged, so every rank holds the same model."""

        def validate(model):
            self.group.average_buffers(model)
            if val is None or not len(val):
                return None, None
            return self.group.gather_metrics(scores(self.group.shard(val)))

        return validate

    def on_train_begin(self, model, history):
        self.group.start(model, self.optimizer)
        if self.sync:
            self.summed = sync_batchnorm(model, self.group.sum)
        if self.say:
            self.say(
                f"data-parallel: {self.group.size} ranks x {threads.get_num_threads()} threads"
            )

    def on_epoch_begin(self, epoch, model):
        self.group.seed_dropout(model, self.seed, epoch)

    def on_backward_end(self, step, logs, model):
        votes = self.preemption.vote() if self.preemption else []
        summed = self.group.allreduce_gradients(model, logs["loss"], logs["hits"], *votes,
                                                skip=self.summed)  # fmt: skip
        logs["loss"], logs["hits"] = summed[0], int(summed[1])
        logs["size"] = self.global_size
        if self.preemption:
            self.preemption.votes = summed[2:]  # the same on every rank

    def on_train_end(self, model, history):
        if self.summed:
            unsync_batchnorm(model)
            self.summed = []


class SharedLoss:
    """A loss times `share`, this rank's part of the global batch's: summed over the ranks,
    the losses and the gradients are the global batch's. Takes class indices y as targets."""

    def __init__(self, loss_fn):
        self.loss_fn, self.share = loss_fn, 1.0

    def forward(self, logits, y):
        targets = y
        if isinstance(self.loss_fn, BinaryCrossEntropy):  # as training.evaluate.targets_for
            targets = heads.sigmoid_targets(y, logits)
        return self.loss_fn.forward(logits, targets) * self.share

    def backward(self):
        return self.loss_fn.backward() * self.share


# ----------------------------------------------------------------------------- synced BatchNorm


class _Combined:
    """A BatchNorm method whose result is combined over the ranks: called as the layer's own
    method, and .combine(*local) for a local result computed elsewhere (the fast engine)."""

    def __init__(self, local, combine):
        self.local, self.combine = local, combine

    def __call__(self, *args):
        return self.combine(*self.local(*args))


def sync_batchnorm(model, total):
    """Make every BatchNorm of the model normalise with the global batch's statistics.

    total: sums a float64 vector over the ranks. Each layer's moments and sums (the
    statistics, and dbeta, dgamma) become those of the global batch, as one process computes
    them on it; the layer stays a plain BatchNorm (saved as one), with these two methods
    replaced on the instance until unsync_batchnorm. Returns the gamma and beta Parameters,
    whose gradients are then summed over the ranks already."""

    def moments(mean, var, m):
        # mean = sum_r m_r mean_r / M, var = sum_r m_r (var_r + (mean_r - mean)^2) / M
        dtype, mean_r, var_r = mean.dtype, mean.astype(np.float64), var.astype(np.float64)
        sums = total(np.append(mean_r * m, m))  # (C + 1,): the sums, then M
        M = int(sums[-1])
        mean = sums[:-1] / M
        var = total(m * (var_r + (mean_r - mean) ** 2)) / M
        return mean.astype(dtype), var.astype(dtype), M

    def sums(dbeta, dgamma):
        C, dtype = len(dbeta), dbeta.dtype
        both = total(np.concatenate([dbeta, dgamma]).astype(np.float64))
        return both[:C].astype(dtype), both[C:].astype(dtype)

    params = []
    for bn in batchnorms(model):
        bn.moments = _Combined(type(bn).moments.__get__(bn), moments)
        bn.sums = _Combined(type(bn).sums.__get__(bn), sums)
        params += bn.parameters()
    return params


def unsync_batchnorm(model):
    """Every BatchNorm back to its own batch's statistics (undoes sync_batchnorm)."""
    for bn in batchnorms(model):
        for name in ("moments", "sums"):
            vars(bn).pop(name, None)


def __getattr__(name):
    if name in ("rank", "size", "is_root"):
        return getattr(world(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def broadcast_parameters(model):
    """Every rank gets rank 0's weights and BatchNorm statistics (fit does this at start)."""
    world().broadcast_parameters(model)


def allreduce_gradients(model, *values):
    """Sum the trainable gradients (scaled by each rank's share) over all ranks, in place."""
    return world().allreduce_gradients(model, *values)


def shard(split):
    """This rank's contiguous part of a Split: rows [r N / P, (r + 1) N / P)."""
    return world().shard(split)


def root_prints_only():
    """On ranks other than 0, send stdout to /dev/null (the examples call it first)."""
    if not world().is_root:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
