"""Threads: one small pool of workers for every parallel step, and BLAS on one thread.

A team of threads that must all arrive at a barrier (OpenBLAS's threads, OpenMP's) stalls
whenever one of them is descheduled, and on a busy machine one always is: measured on 2
cores next to one other busy process, a training step with Numba's prange kernels and
2-thread OpenBLAS took 190 ms instead of 55 ms on one thread, and with two other busy
processes several seconds. So minicnn does its own, simple parallelism instead:

- the work is cut into one piece per thread, along an axis where each piece writes its
  own slice (the batch: each piece does im2col, its matrix products and the kernels for
  its own images);
- this thread runs the first piece itself, then takes back every piece that no worker has
  started yet, so nobody waits for a thread that is not running;
- the Numba kernels are serial loops compiled with nogil, and NumPy releases the GIL
  inside a matrix product, so the pieces really run at the same time;
- OpenBLAS is set to one thread when minicnn is imported (set MINICNN_KEEP_BLAS_THREADS
  to keep its own setting). This changes it for the whole process; `set_blas_threads(n)`
  gives it back.

`set_num_threads(n)` chooses the number of pieces (default: NUMBA_NUM_THREADS, i.e. the
number of cores). A step whose work is too small to gain from the split (SPLIT_MIN_MACS)
runs on the calling thread as one piece: the same arithmetic as on one thread.
"""

import ctypes
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def blas_libraries():
    """Paths of the OpenBLAS libraries loaded in this process (Linux; elsewhere empty)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if ".so" in p)


def _openblas_functions(kind):
    """(library, its first "set" or "get" num_threads function) for each loaded OpenBLAS."""
    for path in blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            function = getattr(lib, name.replace("set_", f"{kind}_"), None)
            if function is not None:
                yield function
                break


def set_blas_threads(n):
    """Set the thread count of every loaded OpenBLAS; returns how many libraries took it."""
    done = 0
    for setter in _openblas_functions("set"):
        setter(int(n))
        done += 1
    return done


def get_blas_threads():
    """Thread count of the first loaded OpenBLAS that reports one, or None."""
    for getter in _openblas_functions("get"):
        getter.restype = ctypes.c_int
        return int(getter())
    return None


_pool = None
_threads = 1

# A step is cut into pieces only from this many multiply-adds on. Splitting saves half of a
# step's time on two threads, and costs the hand-off to a worker and back and the turns the
# threads then take at the GIL between their kernels. On the 2-core Zen 4 machine of
# benchmarks/RESULTS.md (2026-12-08, inference of paper, paper_bn and paper_res at batch 32
# and 256), 2 threads took the 1-thread time T1 / 2 plus 0.4-2 ms per step they split (on
# average over each network's steps), and one thread did 30-40 M multiply-adds per ms: a
# split pays from about 2 x 0.4 ms x 40 M = 32 M multiply-adds, the low end of that cost,
# so that no step that gained from two threads loses them. At batch 32, paper's last two
# convolutions and paper_res's 1x1 projections run whole; every other one is still split.
SPLIT_MIN_MACS = 1 << 25
counts = {"split": 0, "small": 0}  # parallel_for calls split in pieces / kept whole as small


def set_num_threads(n):
    """Cut minicnn's kernels and large matrix products into n pieces run in parallel."""
    global _pool, _threads
    n = max(1, int(n))
    if _pool is not None:
        _pool.shutdown()
    _pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="minicnn") if n > 1 else None
    _threads = n


def get_num_threads():
    return _threads


def parallel_for(func, size, macs=None):
    """Call func(start, stop) on one slice of range(size) per thread; they must not overlap.

    macs: the multiply-adds of the whole range; below SPLIT_MIN_MACS it runs on this thread
    as one slice, func(0, size). None: split whatever the work (elementwise passes).
    """
    parts = min(_threads, size)
    if parts > 1 and macs is not None and macs < SPLIT_MIN_MACS:
        counts["small"] += 1
        parts = 1
    if parts <= 1:
        func(0, size)
        return
    counts["split"] += 1
    cuts = _bounds(size, parts)
    _run_all([lambda s=s, e=e: func(s, e) for s, e in zip(cuts[:-1], cuts[1:])])


_local = threading.local()


def scratch(name, shape, dtype):
    """A per-thread work buffer of the given shape, reused from call to call (no zeroing)."""
    buffers = _local.__dict__.setdefault("buffers", {})
    size = math.prod(shape)
    buf = buffers.get((name, dtype))
    if buf is None or buf.size < size:
        buf = buffers[name, dtype] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _bounds(size, parts):
    return np.linspace(0, size, parts + 1).astype(int)


def _run_all(tasks):
    """Run tasks (callables) on the pool and on this thread; returns their results in order.

    This thread runs the first task itself, then takes back any task that no worker has
    started yet (a worker can be descheduled on a busy machine): nobody waits for a
    thread that is not running.
    """
    jobs = [_pool.submit(task) for task in tasks[1:]]
    results = [tasks[0]()]
    for task, job in zip(tasks[1:], jobs):
        results.append(task() if job.cancel() else job.result())
    return results


if os.environ.get("MINICNN_KEEP_BLAS_THREADS") is None:
    set_blas_threads(1)
set_num_threads(numba.config.NUMBA_NUM_THREADS)
