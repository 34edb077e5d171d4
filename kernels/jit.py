"""JIT options, decided once for every kernel.

`cache=True` writes the compiled machine code next to the source (`__pycache__/`), so a
second run starts without compiling. `fastmath` stays off: the gradient checks compare
against IEEE float64 arithmetic. `nogil=True` lets minicnn run one kernel call per thread
on separate slices of the batch (minicnn/fast/threads.py); the kernels themselves are plain
serial loops, readable and debuggable as Python with NUMBA_DISABLE_JIT=1.
"""

import numba

jit = numba.njit(cache=True, fastmath=False, nogil=True)
"""Kernel decorator: `@jit def f(...)`."""
