"""Atomic writes: a file appears whole under its name, or the old one stays as it was.

Every writer in minicnn (model files, checkpoints, CSV and JSON results, figures) writes to
a temporary file in the same folder, then renames it over the real name with `os.replace`,
which is atomic on one file system: a crash or a full disk never leaves a half-written file
under the real name, nor a temporary file beside it.
"""

import os

import numpy as np

from ..data.sources import printable


class WriteError(OSError):
    """A file could not be written; the message names it and says that the old one is kept."""

    def __str__(self):
        return self.strerror


def atomic_write(path, write):
    """Write a file through a temporary name in its folder: write(tmp_path), then os.replace.

    On any error the temporary file is removed and a file already at `path` stays as it was;
    an OSError (disk full, permissions, ...) comes back as WriteError naming `path`.
    The temporary name keeps the extension, so writers that go by it (Pillow) still can.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    stem, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(folder, f".{stem}.{os.getpid()}.tmp{ext}")
    try:
        os.makedirs(folder, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        kept = "the previous file is unchanged" if os.path.exists(path) else "nothing written"
        why = e.strerror or str(e)
        if e.filename is not None and os.fspath(e.filename) not in (path, tmp):
            why = f"{printable(e.filename)}: {why}"  # a folder on the way, say
        message = f"cannot write {printable(path)}: {why}; {kept}"
        raise WriteError(e.errno, message) from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_savez(path, arrays):
    """np.savez to `path` through atomic_write, synced to disk before the rename."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)
