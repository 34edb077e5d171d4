"""EarlyStopping: end the run when a monitored number stops improving."""

import math


class EarlyStopping:
    """Stop when `monitor` has not improved by min_delta for `patience` epochs.

    monitor: a history key; a name ending in "loss" improves downwards, any other upwards.
    After a resume it replays the history, so a run that had stopped does not go on.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best, self.wait = None, 0

    def _improved(self, value):
        if self.best is None:
            return True
        if self.monitor.endswith("loss"):
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, model, history):
        self.best, self.wait = None, 0
        for row in history:
            self._update(row.get(self.monitor))

    def _update(self, value):
        if value is None or not math.isfinite(value):
            self.wait += 1
        elif self._improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1

    @property
    def stopped(self):
        return self.wait >= self.patience

    def on_epoch_end(self, epoch, logs, model):
        self._update(logs.get(self.monitor))
        return self.stopped
