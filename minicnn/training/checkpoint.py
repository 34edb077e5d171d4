"""Checkpoint: write the run's state after every epoch, and resume from it bit for bit.

The checkpoint (minicnn.io.save_checkpoint, written atomically) holds the weights, BatchNorm's
statistics, every Dropout's generator, the optimizer's state, the epoch, the history and
`extra` (the seed, and the schedule's state). The shuffle and augmentation of an epoch depend
on (seed, epoch) only, so a run resumed after epoch k ends with the same weights, bit for
bit, as a run that was never interrupted.
"""

import os

from ..distributed import Group
from ..io import ModelFileError, load_checkpoint, save_checkpoint


class Checkpoint:
    """The run's checkpoint at `path`: restore() before training, a write after each epoch.

    seed and schedule: the run's; a checkpoint made with others cannot be continued.
    group: minicnn.distributed's group of ranks (rank 0 alone reads and writes the file);
    say: where "resumed from ..." goes (None: nowhere).
    """

    def __init__(self, path, optimizer, seed=0, schedule=None, group=None, say=None):
        self.path, self.optimizer, self.seed, self.schedule = path, optimizer, seed, schedule
        self.group = group if group is not None else Group()
        self.say = say or (lambda *a: None)
        self.history = []

    def restore(self, model, resume=True):
        """Load the checkpoint into the model and the optimizer if resuming and it exists;
        returns its history (the rows of the epochs done), else []."""
        state = self.group.on_root(lambda: self._read(model, resume))
        if state is None:
            return []
        saved_seed, saved = state["extra"].get("seed", self.seed), state["extra"].get("schedule")
        if saved_seed != self.seed:
            raise ModelFileError(  # a checkpoint this run cannot continue
                f"{self.path} was trained with seed {saved_seed}, not {self.seed}: resume with "
                "the same seed (it also fixed the shuffling and, in the examples, the data "
                "split), or start a new run in another folder"
            )
        if (saved is None) != (self.schedule is None):
            raise ModelFileError(  # a checkpoint this run cannot continue
                f"{self.path} was trained {'without' if saved is None else 'with'} a "
                "learning-rate schedule: resume with the same schedule, or start a new run"
            )
        if self.schedule is not None:
            self.schedule.load_state_dict(saved)
        self.say(f"resumed from {self.path} after epoch {state['epoch']}")
        return state["history"]

    def _read(self, model, resume):
        """On rank 0: the checkpoint's epoch, history and extra (JSON-ready), or None."""
        if not (resume and os.path.exists(self.path)):
            return None
        state = load_checkpoint(self.path, model, self.optimizer)
        return {key: state[key] for key in ("epoch", "history", "extra")}

    def on_train_begin(self, model, history):
        self.history = history

    def on_epoch_end(self, epoch, logs, model):
        if self.group.is_root:
            extra = {"seed": self.seed}
            if self.schedule is not None:
                extra["schedule"] = self.schedule.state_dict()
            save_checkpoint(self.path, model, self.optimizer, epoch, self.history, extra=extra)
        return False
