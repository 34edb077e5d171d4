"""SaveBest: keep the model file of the best epoch so far."""

import math

from ..distributed import world
from ..io import save


class SaveBest:
    """Save the model (minicnn.save) each time `monitor` improves: the best epoch's weights.

    monitor: a history key, "val_acc" (higher is better) or "val_loss" (lower is better).
    metadata: dict stored in the model file (e.g. the settings). Under MPI, rank 0 writes.
    """

    def __init__(self, path, monitor="val_acc", metadata=None):
        self.path, self.monitor, self.metadata = path, monitor, metadata
        self.best, self.best_epoch = None, None

    def _better(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.monitor.endswith("loss") else value > self.best

    def on_train_begin(self, model, history):
        self.best, self.best_epoch = None, None
        for row in history:  # after --resume, the best so far is in the history
            if self._better(row.get(self.monitor)):
                self.best, self.best_epoch = row[self.monitor], row["epoch"]

    def on_epoch_end(self, epoch, logs, model):
        if self._better(logs.get(self.monitor)):
            self.best, self.best_epoch = logs[self.monitor], epoch
            meta = dict(self.metadata or {}, epoch=epoch, **{self.monitor: logs[self.monitor]})
            if world().is_root:
                save(model, self.path, metadata=meta)
        return False
