"""JIT options, decided once for every kernel.

`cache=True` writes the compiled machine code next to the source (`__pycache__/`), so a
second run starts without compiling. `fastmath` stays off: the gradient checks compare
against IEEE float64 arithmetic. `parallel=True` is used only where a `prange` loop runs
over an axis whose iterations each write their own slice.
"""

import os

# Numba's OpenMP threads and OpenBLAS's threads take turns on the same cores. By default
# idle OpenMP threads spin, stealing the cores from the next matrix multiply: measured on
# 2 cores, a training step ran 3x slower. Passive waiting makes them sleep instead. This
# must be set before Numba starts its thread pool; a value set by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402

jit = numba.njit(cache=True, fastmath=False, nogil=True)
"""Serial kernel: `@jit def f(...)`."""

pjit = numba.njit(cache=True, fastmath=False, nogil=True, parallel=True)
"""Parallel kernel: `@pjit def f(...)` with `numba.prange` over the batch or channel axis."""

prange = numba.prange
