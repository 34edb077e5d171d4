"""NonFiniteGuard: stop at the first NaN or infinite loss, before it reaches the weights."""

import math

import numpy as np


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch, step and checkpoint."""


class NonFiniteGuard:
    """Raise TrainingDiverged when a step's loss, or the weights after an epoch, are NaN or
    infinite. The loss is checked before the optimizer step, so the weights never take it.

    checkpoint: the path fit writes after each epoch (None: none); the message says which
    epoch's checkpoint is kept.
    """

    def __init__(self, checkpoint=None):
        self.checkpoint, self.last_good, self.epoch = checkpoint, None, None

    def _kept(self):
        if self.last_good is None:
            return "no checkpoint had been written yet"
        return f"the last good checkpoint, {self.checkpoint} (epoch {self.last_good}), is kept"

    def on_train_begin(self, model, history):
        self.last_good = history[-1]["epoch"] if history and self.checkpoint else None

    def on_epoch_begin(self, epoch, model):
        self.epoch = epoch

    def on_backward_end(self, step, logs, model):
        loss = logs["loss"]
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the training loss became {loss} at epoch {self.epoch}, step {step}; "
                f"stopped; {self._kept()}. Try a smaller learning rate."
            )

    def on_epoch_end(self, epoch, logs, model):
        if not all(np.isfinite(p.data).all() for p in model.parameters()):
            kept = f"{self.checkpoint} (epoch {self.last_good}) is kept"
            raise TrainingDiverged(
                f"the weights became NaN or infinite in epoch {epoch}; stopped; "
                + (kept if self.last_good else "no checkpoint")
            )
        self.last_good = epoch if self.checkpoint else self.last_good
        return False
