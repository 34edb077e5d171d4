"""The older home of minicnn.saving, kept so that `from minicnn.io import save` still works.

Model files, checkpoints and results writers live in minicnn/saving/, one module each; every
name this module had is looked up there when asked for (PEP 562), so the two never differ.
"""

from . import saving
from .saving.record import model_arrays as _model_arrays
from .saving.validate import expected_arrays as _expected_arrays

__all__ = [*saving.__all__, "_expected_arrays", "_model_arrays"]


def __getattr__(name):
    if name in saving.__all__:
        return getattr(saving, name)
    raise AttributeError(f"module 'minicnn.io' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
