"""Training: fit (loop.py, the loop in a screen), evaluate, and the callbacks that plug in.

Read loop.py first; then each callback on its own: progress.py, checkpoint.py,
preemption.py, early_stopping.py, save_best.py, guard.py (callbacks.py lists the hooks);
ensemble.py averages several trained models.
"""

from .callbacks import CallbackList
from .checkpoint import Checkpoint
from .checks import check_inputs, check_split
from .early_stopping import EarlyStopping
from .ensemble import Ensemble, EnsembleError
from .evaluate import evaluate, normalize_of, num_classes_of, targets_for
from .guard import NonFiniteGuard, TrainingDiverged
from .loop import EpochSums, epoch_seed, fit, train_loop
from .preemption import Preemption, TrainingInterrupted
from .progress import Progress, format_row
from .save_best import SaveBest

__all__ = [
    "CallbackList",
    "Checkpoint",
    "EarlyStopping",
    "Ensemble",
    "EnsembleError",
    "EpochSums",
    "NonFiniteGuard",
    "Preemption",
    "Progress",
    "SaveBest",
    "TrainingDiverged",
    "TrainingInterrupted",
    "check_inputs",
    "check_split",
    "epoch_seed",
    "evaluate",
    "fit",
    "format_row",
    "normalize_of",
    "num_classes_of",
    "targets_for",
    "train_loop",
]
