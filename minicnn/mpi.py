"""The ranks of an MPI job, for data-parallel training (minicnn.distributed): Group.

Group is one process, rank 0 of 1, whose every method is a no-op; MPIGroup the ranks of an
MPI job with the same methods. world() makes the process's group once.

The sum is deterministic. MPI_Allreduce leaves the order of its additions to the library (it
changes with the message size, the rank count and the version, and the standard does not
promise every rank the same bits). Here the buffer is cut into P chunks; an Alltoall brings
rank c every rank's copy of chunk c, rank c adds them in rank order 0, 1, ..., P-1, and an
Allgather hands every summed chunk to everyone. That is a reduce-scatter plus an allgather:
the bytes of a ring allreduce, 2 (P - 1) / P of the buffer sent per rank and step, the same
bits on every rank, and for a given P the same bits on every run.

`import minicnn` never imports mpi4py: it is imported only when the process was started by an
MPI launcher with more than one rank, or when asked for (`world(force=True)`, fit(distributed=
True)).
"""

import functools
import json
import os
import sys
import threading
import time
import traceback

import numpy as np

from . import agreement
from .layers import Dropout
from .layers.nested import leaves

TIMEOUT_ENV = "MINICNN_MPI_TIMEOUT"  # seconds a rank may wait in one collective (0: forever)

# The variables MPI launchers set to the number of ranks: MPICH / Intel MPI / srun --mpi=pmi2,
# Open MPI, MVAPICH; Slurm with PMIx sets PMIX_RANK and the step's task count.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


class DistributedError(RuntimeError):
    """The ranks cannot train together (they disagree on the data, or the batch is too small).

    Raised on every rank at once, with the same message, so the run ends cleanly everywhere.
    """


def launched_size():
    """The number of ranks an MPI launcher started, from its environment (1 outside one)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    if "PMIX_RANK" in os.environ:
        return int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "2")))
    return 1


class Group:
    """One process: rank 0 of 1. Every method is a no-op, so code can call them unconditionally.

    MPIGroup below does the real work with the same methods.
    """

    rank, size = 0, 1
    part = None  # (rank, size) for minicnn.data.batches, None for one process

    @property
    def is_root(self):
        return self.rank == 0

    def sum(self, values):
        """float64 (n,) -> the sum over ranks, added in rank order (here: the values)."""
        return np.asarray(values, dtype=np.float64)

    def agree(self, model, train, val, **settings):
        """Refuse (DistributedError on every rank) unless all ranks have the same data,
        model shapes and settings, and every rank gets at least one image of a batch."""

    def start(self, model, optimizer):
        """Give every rank rank 0's weights, buffers and optimizer state."""

    def broadcast_parameters(self, model):
        """Overwrite every rank's weights and buffers (BatchNorm's statistics) with rank 0's."""

    def on_root(self, fn):
        """fn() on rank 0 only (it may read files); its JSON-ready result on every rank.
        An exception there is raised on rank 0 and, as DistributedError, on the others."""
        return fn()

    def gather(self, value):
        """A JSON-ready value from every rank, as a list in rank order, on every rank."""
        return [value]

    def seed_dropout(self, model, seed, epoch):
        """Per-rank Dropout streams for an epoch, from (seed, epoch, rank) (P > 1 only)."""

    def share(self, loss_fn, y, n):
        """This rank's share of the global batch's loss: len(y) / n for n images in the
        global batch, or its share of the class weights when the loss has class_weights."""
        weights = getattr(loss_fn, "class_weights", None)
        if weights is None or self.size == 1:
            return len(y) / n  # one process: 1
        mine = float(np.asarray(weights, dtype=np.float64)[y].sum())
        return mine / float(self.sum([mine])[0])

    def allreduce_gradients(self, model, *values, skip=()):
        """Sum every trainable gradient over the ranks (one flat buffer, rank order), and the
        numbers in `values` with them; returns those numbers summed (here: as given).
        skip: Parameters whose gradients are summed already (synchronised BatchNorm's)."""
        return values

    def average_buffers(self, model):
        """Average BatchNorm's running statistics over the ranks (they differ per rank
        unless sync_batchnorm), so every rank evaluates and saves the same model."""

    def shard(self, split):
        """This rank's contiguous part of a Split (evaluation work split across ranks)."""
        return split

    def gather_metrics(self, result):
        """(loss, accuracy) of the whole split from each rank's evaluate() of its shard."""
        return result["loss"], result["accuracy"]


class MPIGroup(Group):
    """All ranks of an MPI job (mpi4py's COMM_WORLD).

    A rank that fails stops the others: an uncaught exception, or one that leaves fit(),
    calls MPI_Abort after printing it, and a rank that dies is noticed by the launcher. With
    MINICNN_MPI_TIMEOUT=T, a rank that waits more than T seconds in one collective (another
    rank hangs) aborts the job too.
    """

    def __init__(self, comm=None, timeout=None):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(
                f"minicnn.distributed needs mpi4py ({e}): pip install 'minicnn[mpi]', or "
                "mpi4py built against your cluster's MPI (README: several processes)"
            ) from None
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.part = (self.rank, self.size)
        self._buffers = {}
        self._waiting = None  # (what, since) while inside a collective
        if timeout is None:
            timeout = float(os.environ.get(TIMEOUT_ENV, "0") or 0)
        self.timeout = timeout
        if self.size > 1:
            _abort_on_uncaught_exceptions(self)
            if timeout > 0:
                threading.Thread(target=self._watch, daemon=True).start()

    # -- the collectives, each timed by the watchdog

    def _call(self, what, fn, *args):
        self._waiting = (what, time.monotonic())
        try:
            return fn(*args)
        finally:
            self._waiting = None

    def _watch(self):
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            waiting = self._waiting
            if waiting and time.monotonic() - waiting[1] > self.timeout:
                self.abort(
                    f"rank {self.rank} waited more than {self.timeout:g} s in {waiting[0]}: "
                    f"another rank has stopped or hangs ({TIMEOUT_ENV})"
                )

    def abort(self, message):
        """Print `message` naming this rank and stop every rank of the job (MPI_Abort)."""
        print(f"error: {message}; stopping all {self.size} ranks (MPI_Abort)", file=sys.stderr)
        sys.stderr.flush()
        time.sleep(0.5)  # the launcher forwards our stderr; MPI_Abort would cut it short
        self.comm.Abort(1)
        os._exit(1)  # MPICH's MPI_Abort may return before the launcher ends this process

    def sum(self, values):
        """Sum over ranks in rank order: reduce-scatter by Alltoall, then Allgather."""
        values = np.ascontiguousarray(values)
        P, n = self.size, values.size
        chunk = -(-n // P)  # ceil(n / P): each rank sums one chunk
        send = np.zeros(P * chunk, dtype=values.dtype)
        send[:n] = values.reshape(-1)
        recv = np.empty_like(send)
        self._call("Alltoall", self.comm.Alltoall, send, recv)  # recv[s] = rank s's chunk
        parts = recv.reshape(P, chunk)
        mine = parts[0].copy()
        for s in range(1, P):  # rank order, so the bits depend on P only
            mine += parts[s]
        self._call("Allgather", self.comm.Allgather, mine, send)
        return send[:n].reshape(values.shape)

    def _gather_text(self, text):
        """Every rank's str, on every rank (no pickle: lengths, then the UTF-8 bytes)."""
        data = np.frombuffer(text.encode(), dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        self._call("Allgather", self.comm.Allgather, np.array([data.size]), sizes)
        out = np.empty(int(sizes.sum()), dtype=np.uint8)
        spec = [out, (sizes, np.concatenate([[0], np.cumsum(sizes)[:-1]])), self.MPI.BYTE]
        self._call("Allgatherv", self.comm.Allgatherv, [data, self.MPI.BYTE], spec)
        ends = np.cumsum(sizes)
        return [out[e - s : e].tobytes().decode() for s, e in zip(sizes, ends)]

    def _broadcast_text(self, text):
        data = np.frombuffer((text or "").encode(), dtype=np.uint8).copy()
        size = np.array([data.size])
        self._call("Bcast", self.comm.Bcast, size, 0)
        if self.rank:
            data = np.empty(int(size[0]), dtype=np.uint8)
        self._call("Bcast", self.comm.Bcast, data, 0)
        return data.tobytes().decode()

    def broadcast(self, tree):
        """Rank 0's dicts / lists / numbers / arrays on every rank; the others pass their own
        structure of the same shapes (e.g. an optimizer's state_dict) to be overwritten."""
        arrays = []

        def strip(t):
            if isinstance(t, dict):
                return {k: strip(v) for k, v in t.items()}
            if isinstance(t, (list, tuple)):
                return [strip(v) for v in t]
            if isinstance(t, np.ndarray):
                arrays.append(np.ascontiguousarray(t))
                return {"__array__": len(arrays) - 1}
            return t

        skeleton = json.loads(self._broadcast_text(json.dumps(strip(tree))))
        for a in arrays:
            self._call("Bcast", self.comm.Bcast, a, 0)

        def build(t):
            if isinstance(t, dict) and "__array__" in t:
                return arrays[t["__array__"]]
            if isinstance(t, dict):
                return {k: build(v) for k, v in t.items()}
            return [build(v) for v in t] if isinstance(t, list) else t

        return build(skeleton)

    # -- what data-parallel training calls (minicnn.distributed.DataParallel)

    def agree(self, model, train, val, **settings):
        P, B = self.size, settings.get("batch_size")
        mine = agreement.facts(model, train, val, P, settings)
        every = [json.loads(t) for t in self._gather_text(json.dumps(mine, sort_keys=True))]
        problems = agreement.differences(every)
        if problems:
            raise DistributedError(
                "the ranks must train on the same data with the same settings: "
                + "; ".join(problems[:4])
            )
        if B is not None and B < P:
            raise DistributedError(
                f"a batch of {B} image{'s' * (B > 1)} cannot be cut into {P} parts, one per "
                f"rank: use --batch-size {P} or more, or at most {B} rank{'s' * (B > 1)}"
            )

    def start(self, model, optimizer):
        self.broadcast_parameters(model)
        optimizer.load_state_dict(self.broadcast(optimizer.state_dict()))
        _share_the_cores(self)

    def broadcast_parameters(self, model):
        for layer in leaves(model.layers):  # the layers inside residual blocks too
            arrays = [p.data for p in layer.parameters()]
            arrays += [getattr(layer, name) for name in getattr(layer, "BUFFERS", ())]
            for a in arrays:
                self._call("Bcast", self.comm.Bcast, a, 0)

    def on_root(self, fn):
        result, error = None, None
        if self.is_root:
            try:
                result = fn()
            except Exception as e:  # told to the others, raised here as it is
                error = e
        message = self._broadcast_text(
            json.dumps({"error": None if error is None else f"{type(error).__name__}: {error}"})
        )
        if error is not None:
            error.all_ranks = True  # the others raise too: no need to abort them
            raise error
        failed = json.loads(message)["error"]
        if failed:
            raise DistributedError(f"rank 0 failed: {failed}")
        return json.loads(self._broadcast_text(json.dumps(result)))

    def gather(self, value):
        return [json.loads(text) for text in self._gather_text(json.dumps(value))]

    def seed_dropout(self, model, seed, epoch):
        for i, layer in enumerate(leaves(model.layers)):
            if isinstance(layer, Dropout):
                layer.rng = np.random.default_rng([seed, epoch, self.rank, i])

    def allreduce_gradients(self, model, *values, skip=()):
        skip = {id(p) for p in skip}
        params = [p for p in model.parameters() if p.trainable and id(p) not in skip]
        if not params:
            return tuple(float(v) for v in self.sum(np.array(values, dtype=np.float64)))
        sizes = [p.grad.size for p in params]
        key = (params[0].grad.dtype.str, sum(sizes) + len(values))
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(key[1], dtype=params[0].grad.dtype)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for p, a, b in zip(params, offsets[:-1], offsets[1:]):
            buf[a:b] = p.grad.reshape(-1)
        buf[offsets[-1] :] = values
        total = self.sum(buf)
        for p, a, b in zip(params, offsets[:-1], offsets[1:]):
            np.copyto(p.grad, total[a:b].reshape(p.grad.shape))
        return tuple(float(v) for v in total[offsets[-1] :])

    def average_buffers(self, model):
        for layer in leaves(model.layers):
            for name in getattr(layer, "BUFFERS", ()):
                a = getattr(layer, name)
                setattr(layer, name, (self.sum(a.astype(np.float64)) / self.size).astype(a.dtype))

    def shard(self, split):
        if split is None:
            return None
        N, r, P = len(split), self.rank, self.size
        lo, hi = r * N // P, (r + 1) * N // P
        return type(split)(split.images[lo:hi], split.labels[lo:hi])

    def gather_metrics(self, result):
        n, loss = len(result["labels"]), result["loss"]
        correct = float(np.sum(result["predictions"] == result["labels"]))
        has_loss = 0.0 if loss is None else 1.0  # an empty shard has no loss either
        total_loss, total_correct, total, losses = self.sum(
            [(loss or 0.0) * n, correct, n, has_loss]
        )
        if total == 0:
            return None, float("nan")
        return (total_loss / total if losses else None), total_correct / total


# ----------------------------------------------------------------------------- helpers


def _abort_on_uncaught_exceptions(group):
    """An exception nobody catches prints as usual, then stops every rank (a rank that just
    exited would leave the others waiting forever in their next collective)."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        if not getattr(value, "all_ranks", False):  # raised by every rank: each ends itself
            group.abort(f"rank {group.rank} stopped with {kind.__name__} (above)")

    sys.excepthook = hook


def _share_the_cores(group):
    """Under MPI each rank's default thread count is its share of its machine's cores."""
    import numba

    from .fast import threads

    if threads.get_num_threads() != numba.config.NUMBA_NUM_THREADS:
        return  # chosen by the user (--threads)
    local = group.comm.Split_type(group.MPI.COMM_TYPE_SHARED).Get_size()
    threads.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // local))


def stop_all_ranks_on_error(*collective):
    """Decorator for fit: an exception leaving it on one rank aborts the job, except the types
    in `collective`, which every rank raises at the same point (they end the run cleanly)."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except (DistributedError, *collective) as e:
                e.all_ranks = True  # every rank raises it at the same point
                raise
            except BaseException as e:
                group = _world
                if group is None or group.size == 1 or getattr(e, "all_ranks", False):
                    raise
                traceback.print_exc()
                group.abort(f"rank {group.rank}: {type(e).__name__}: {e}")
                raise

        return wrapper

    return decorate


# ----------------------------------------------------------------------------- the world

_world = None


def world(force=False):
    """The group of this process: MPIGroup when started by an MPI launcher with more than one
    rank (or force=True, which needs mpi4py), else a one-process Group. Made once."""
    global _world
    if _world is None or (force and not isinstance(_world, MPIGroup)):
        _world = MPIGroup() if force or launched_size() > 1 else Group()
    return _world


def group(distributed=None):
    """The group fit trains with: None -> world(); True -> world(force=True) (mpi4py needed);
    False -> one process even under mpiexec; a Group -> itself."""
    if isinstance(distributed, Group):
        return distributed
    if distributed is False:
        return Group()
    return world(force=bool(distributed))
