"""The older home of fit and evaluate: every name it had, now from minicnn.training."""

from .data import batches  # noqa: F401
from .training import (  # noqa: F401
    EarlyStopping,
    SaveBest,
    TrainingDiverged,
    check_split,
    epoch_seed,
    evaluate,
    fit,
    format_row,
    num_classes_of,
    targets_for,
)
from .training.evaluate import normalize_of as _normalize_of  # noqa: F401
