"""Decode many image files into one uint8 (N, C, S, S) array, on all cores, with a progress bar.

Files are handed out in chunks to a `ProcessPoolExecutor`; each worker opens the zip (if any)
itself and keeps it open for its next chunks. Each file goes through `images.load_image`, as
in `predict`. A file that fails to decode is reported back, never raised: the caller skips
it and warns once.
"""

import os
import zipfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from .images import UnreadableImage, load_image

CHUNK = 256  # files per task: large enough to hide the pool's overhead, small for a smooth bar
_open_zips = {}  # (process id, zip path) -> ZipFile: a forked worker must not share the parent's
# file offset, so each process opens the zip itself and keeps it for its next chunks


def decode_file(zip_path, member, image_size, channels):
    """Decode one file: `member` is a path, or a member name inside the zip at `zip_path`."""
    if zip_path is None:
        return load_image(member, image_size, channels)
    key = (os.getpid(), zip_path)
    zf = _open_zips.get(key)
    if zf is None:
        zf = _open_zips[key] = zipfile.ZipFile(zip_path)
    return load_image(zf.read(member), image_size, channels, name=f"{zip_path}:{member}")


def _decode_chunk(zip_path, members, image_size, channels):
    """Decode a list of files; return (uint8 (n, C, S, S), bool ok (n,), error strings)."""
    out = np.zeros((len(members), channels, image_size, image_size), dtype=np.uint8)
    ok = np.zeros(len(members), dtype=bool)
    errors = []
    for i, member in enumerate(members):
        try:
            out[i] = decode_file(zip_path, member, image_size, channels)
            ok[i] = True
        except Exception as e:  # any unreadable file is skipped, never fatal
            errors.append(str(e) if isinstance(e, UnreadableImage) else f"{type(e).__name__}: {e}")
    return out, ok, errors


def default_workers():
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def decode_many(zip_path, members, image_size, channels, workers=None, progress=True, desc=""):
    """Decode files in parallel into one array.

    Inputs:
    - zip_path: path of the zip holding the members, or None for plain file paths
    - members: list of N member names (zip) or file paths
    - image_size: S; channels: C
    - workers: processes to use (None: all cores; 1: decode in this process)

    Returns:
    - images: uint8 (N, C, S, S); rows of failed files are zero
    - ok: bool (N,), False where the file could not be decoded
    - errors: {index: message} for the failed files
    """
    N = len(members)
    images = np.zeros((N, channels, image_size, image_size), dtype=np.uint8)
    ok = np.zeros(N, dtype=bool)
    errors = {}
    workers = default_workers() if workers is None else max(1, int(workers))
    starts = list(range(0, N, CHUNK))
    bar = tqdm(total=N, desc=desc or "decoding", unit="img", disable=not progress, leave=False)

    def store(start, result):
        out, chunk_ok, chunk_errors = result
        n = len(chunk_ok)
        images[start : start + n] = out
        ok[start : start + n] = chunk_ok
        for i, msg in zip(np.flatnonzero(~chunk_ok), chunk_errors, strict=True):
            errors[start + int(i)] = msg
        bar.update(n)

    try:
        if workers == 1 or N <= CHUNK:
            for s in starts:
                store(s, _decode_chunk(zip_path, members[s : s + CHUNK], image_size, channels))
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(starts))) as pool:
                futures = [
                    (
                        s,
                        pool.submit(
                            _decode_chunk, zip_path, members[s : s + CHUNK], image_size, channels
                        ),
                    )
                    for s in starts
                ]
                for s, fut in futures:
                    store(s, fut.result())
    finally:
        bar.close()
        zf = _open_zips.pop((os.getpid(), zip_path), None)
        if zf is not None:
            zf.close()
    return images, ok, errors
