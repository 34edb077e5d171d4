"""The --out folder of a training run: its files, and a lock held while a training runs in it.

A second training on the same folder refuses at once, naming the holder; a lock left by a
run that crashed (kill -9 included) is no obstacle, since the operating system drops it.
check_resume compares a --resume's settings with those its checkpoint was trained with.
"""

import atexit
import json
import os
import socket
import time

from ..distributed import DistributedError, world
from ..saving.checkpoint import checkpoint_info
from .common import CommandError

CHECKPOINT = "checkpoint.npz"
# --resume: options that make another run if changed (the network, the data and its order,
# what a step is): refused. Options not compared: where files go and how the run is shown.
# Any other option may change (--epochs extends the run, --lr, ...): the value given is used.
RESUME_FIXED = ("preset", "screening", "output", "classes", "image_size", "per_class", "seed",
                "split_seed", "batch_size", "optimizer", "schedule", "warmup_epochs", "dropout",
                "init", "head_epochs", "keep_frozen", "keep_statistics", "fold_gray")  # fmt: skip
RESUME_NOT_COMPARED = ("out", "resume", "no_progress", "no_cache", "workers", "debug",
                       "data_name", "download", "pos_weight")  # fmt: skip


class RunFolder:
    """The --out folder of one training: its file paths, and a lock held while it runs.

    The lock is `train.lock`, held with an OS file lock (flock; msvcrt on Windows), which the
    OS drops when the process ends in any way, kill -9 included: a second training on the
    folder refuses at once, and a crashed one never leaves it locked. The file says who holds it.
    """

    LOCK = "train.lock"

    def __init__(self, path, resume=False):
        self.path = os.fspath(path)
        self.checkpoint = self.file(CHECKPOINT)
        self.model = self.file("model.npz")
        self._fd = None
        try:  # under mpiexec, rank 0 alone makes, locks and fills it; the others learn if
            world().on_root(lambda: self._open(resume))  # it failed, rather than wait
        except DistributedError:  # rank 0 said why
            raise SystemExit(1) from None

    def _open(self, resume):
        os.makedirs(self.path, exist_ok=True)
        self._fd = _lock(self.file(self.LOCK), self.path)
        atexit.register(self.release)
        if os.path.exists(self.checkpoint) and not resume:
            print(
                f"note: {self.checkpoint} exists and will be overwritten "
                "(use --resume to continue it)"
            )

    def file(self, name):
        return os.path.join(self.path, name)

    def kept(self):
        """What a failed or interrupted run leaves to resume from, in words."""
        info = checkpoint_info(self.checkpoint)
        if info is None:
            return "no checkpoint had been written"
        return f"the checkpoint of {where(info)}, {self.checkpoint}, is intact"

    def release(self):
        if self._fd is not None:
            os.remove(self.file(self.LOCK))  # first: a run that opens it later makes a new one
            os.close(self._fd)
            self._fd = None


def _try_lock(fd):
    """Take an exclusive OS lock on the open file, or raise OSError at once."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _lock(path, folder):
    """Hold the lock file `path`; CommandError naming its holder when another process does."""
    for _ in range(10):  # another run may remove the file between our open and our lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _try_lock(fd)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise CommandError(
                f"{folder} is in use by another training ({holder}; lock file {path}): "
                "wait until it ends, or train into another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise CommandError(f"could not take the lock {path}")
    left = os.read(fd, 200).decode("utf-8", "replace").strip()
    if left:
        print(f"note: {path} was left by a run that ended without removing it ({left}); taken over")
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {when}\n".encode())
    return fd


def where(info):
    """ "epoch 3", or "step 17 of epoch 4" for a checkpoint written inside an epoch."""
    if info["step"]:
        return f"step {info['step']} of epoch {info['epoch'] + 1}"
    return f"epoch {info['epoch']}"


def _option(key, value):
    return f"--{key.replace('_', '-')} {value}"


def check_resume(folder, settings):
    """Before any work, for --resume: CommandError unless `folder` holds a checkpoint whose
    RESUME_FIXED settings are those given; a note naming each other setting that differs,
    and the value used. settings: the run's options (vars(args), the recipe filled)."""
    path = os.path.join(folder, CHECKPOINT)
    if not os.path.exists(path):
        raise CommandError(
            f"--resume: no checkpoint in {folder} ({CHECKPOINT} not found): check --out, "
            "or train without --resume to start a run"
        )
    info = checkpoint_info(path)
    if info is None:
        return  # unreadable: loading it says why, and that nothing was changed
    saved = info["settings"]
    if saved is None:
        print(f"note: {path} holds no settings (an older minicnn wrote it): nothing can be "
              "compared; the options given now are used")  # fmt: skip
        return
    now = json.loads(json.dumps(settings))  # as the checkpoint stores them
    differ = [k for k in now if k in saved and k not in RESUME_NOT_COMPARED and now[k] != saved[k]]
    fixed = [k for k in differ if k in RESUME_FIXED]
    if fixed:
        given = ", ".join(_option(k, now[k]) for k in fixed)
        theirs = ", ".join(_option(k, saved[k]) for k in fixed)
        raise CommandError(
            f"--resume: {path} was trained with {theirs}, not {given}: resume with its "
            "settings, or train into another --out"
        )
    notes = []
    for k in differ:
        used = now[k]
        if k == "lr" and now.get("schedule", "none") != "none":
            used = f"{saved[k]} (the schedule goes on from its state)"
        notes.append(f"{_option(k, now[k])} (checkpoint: {saved[k]}; used: {used})")
    if notes:
        print("note: --resume with other settings than the checkpoint's: " + ", ".join(notes))
