"""The --out folder of a training run: its files, and a lock held while a training runs in it.

A second training on the same folder refuses at once, naming the holder; a lock left by a
run that crashed (kill -9 included) is no obstacle, since the operating system drops it.
"""

import atexit
import os
import socket
import time

from .. import io
from ..distributed import world
from .common import CommandError


class RunFolder:
    """The --out folder of one training: its file paths, and a lock held while it runs.

    The lock is `train.lock`, held with an OS file lock (flock; msvcrt on Windows), which the
    OS drops when the process ends in any way, kill -9 included: a second training on the
    folder refuses at once, and a crashed one never leaves it locked. The file says who holds it.
    """

    LOCK = "train.lock"

    def __init__(self, path, resume=False):
        self.path = os.fspath(path)
        self.checkpoint = self.file("checkpoint.npz")
        self.model = self.file("model.npz")
        self._fd = None
        if not world().is_root:  # under mpiexec, rank 0 alone makes, locks and fills it
            return
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
        epoch = io.checkpoint_epoch(self.checkpoint)
        if epoch is None:
            return "no checkpoint had been written"
        return f"the checkpoint of epoch {epoch}, {self.checkpoint}, is intact"

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
