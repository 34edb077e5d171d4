"""Load minicnn's own `kernels` package, never another distribution of the same name.

PyPI also has a package called `kernels`. A plain `import kernels` takes whichever comes
first on sys.path, so minicnn instead loads the folder that sits beside `minicnn/` by its
file location. If `sys.modules["kernels"]` is already ours it is reused; if it is someone
else's, it is left alone and ours is loaded under the private name `_minicnn_kernels`.
"""

import importlib.util
import sys
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent.parent / "kernels"


def _is_ours(module):
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().parent == KERNELS_DIR


def _load():
    for name in ("kernels", "_minicnn_kernels"):
        module = sys.modules.get(name)
        if module is not None and _is_ours(module):
            return module
    name = "_minicnn_kernels" if "kernels" in sys.modules else "kernels"
    init = KERNELS_DIR / "__init__.py"
    if not init.exists():
        raise ImportError(f"minicnn's kernels package is missing: expected {init}")
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(KERNELS_DIR)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def kernels_compiled():
    """True once Numba's on-disk cache holds compiled kernels (a later run starts fast).

    The cache is kernels/__pycache__, or the folder NUMBA_CACHE_DIR names when it is set.
    """
    import numba

    if numba.config.CACHE_DIR:
        return any(Path(numba.config.CACHE_DIR).rglob("*.nbi"))
    return any((KERNELS_DIR / "__pycache__").glob("*.nbi"))


kernels = _load()
