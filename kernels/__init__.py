"""minicnn's Numba hot loops, one module per concern.

Kernels take arrays and ints only; the caller allocates outputs and arranges contiguity.
This package imports its own modules relatively, so minicnn can load it by file location
even when another distribution named `kernels` is installed (see minicnn/_kernels.py).
"""

from . import adam, augment, batchnorm, fused, im2col, pool, winograd

__minicnn__ = True
__all__ = ["adam", "augment", "batchnorm", "fused", "im2col", "pool", "winograd"]
