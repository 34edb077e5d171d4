"""minicnn's Numba hot loops, one module per concern.

Kernels take arrays and ints only; the caller allocates outputs and arranges contiguity.
This folder is installed as `minicnn.kernels` (setup.cfg's package_dir), so it never meets
another distribution named `kernels`; its modules import each other relatively.
"""

from pathlib import Path

from . import adam, augment, batchnorm, fused, im2col, pool, winograd

__all__ = [
    "adam",
    "augment",
    "batchnorm",
    "fused",
    "im2col",
    "pool",
    "winograd",
    "kernels_compiled",
]


def kernels_compiled():
    """True once Numba's on-disk cache holds compiled kernels (a later run starts fast).

    The cache is this folder's __pycache__, or the folder NUMBA_CACHE_DIR names when it is set.
    """
    import numba

    if numba.config.CACHE_DIR:
        return any(Path(numba.config.CACHE_DIR).rglob("*.nbi"))
    return any((Path(__file__).resolve().parent / "__pycache__").glob("*.nbi"))
