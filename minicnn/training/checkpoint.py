"""Checkpoint: write the run's state after every epoch (and at a step, when a signal stops
the run), and resume from it bit for bit.

The checkpoint (minicnn.io.save_checkpoint, written atomically) holds the weights, BatchNorm's
statistics, every Dropout's generator, the optimizer's state, the epoch, the history and
`extra` (the seed, and the schedule's state). The shuffle and augmentation of an epoch depend
on (seed, epoch) only, so a run resumed after epoch k ends with the same weights, bit for
bit, as a run that was never interrupted.

A checkpoint written after step k of an epoch (save_step, by minicnn.training.preemption) also
holds the epoch's running sums for its history row, and under MPI every rank's Dropout
generators; the resumed epoch skips its first k batches (made and dropped, so that the
shuffle and augmentation draws are those of the uninterrupted run) and goes on from there.
"""

import os

from ..distributed import Group
from ..io import ModelFileError, load_checkpoint, save_checkpoint
from ..saving.checkpoint import dropout_states, set_dropout_states


class Checkpoint:
    """The run's checkpoint at `path`: restore() before training, a write after each epoch.

    seed and schedule: the run's; a checkpoint made with others cannot be continued.
    group: minicnn.distributed's group of ranks (rank 0 alone reads and writes the file);
    say: where "resumed from ..." goes (None: nowhere).
    After restore(), `in_epoch` is the running sums of the epoch a stopped run was inside
    (EpochSums.state() of minicnn.training.loop), or None.
    """

    def __init__(self, path, optimizer, seed=0, schedule=None, group=None, say=None):
        self.path, self.optimizer, self.seed, self.schedule = path, optimizer, seed, schedule
        self.group = group if group is not None else Group()
        self.say = say or (lambda *a: None)
        self.history, self.in_epoch, self.rank_dropout = [], None, None

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
        if state["step"]:  # stopped inside an epoch
            self.in_epoch = state["extra"]["in_epoch"]
            self.rank_dropout = state["extra"].get("rank_dropout")
            where = f"step {state['step']} of epoch {state['epoch'] + 1}"
        else:
            where = f"epoch {state['epoch']}"
        self.say(f"resumed from {self.path} after {where}")
        return state["history"]

    def _read(self, model, resume):
        """On rank 0: the checkpoint's epoch, step, history and extra (JSON-ready), or None."""
        if not (resume and os.path.exists(self.path)):
            return None
        state = load_checkpoint(self.path, model, self.optimizer)
        return {key: state[key] for key in ("epoch", "step", "history", "extra")}

    def _extra(self):
        extra = {"seed": self.seed}
        if self.schedule is not None:
            extra["schedule"] = self.schedule.state_dict()
        return extra

    def on_train_begin(self, model, history):
        self.history = history

    def on_epoch_begin(self, epoch, model):
        # under MPI, each rank's Dropout was reseeded for the epoch (DataParallel, earlier in
        # the list); a resumed epoch goes on with the generators each rank had at its step
        states = self.rank_dropout
        if states and epoch == self.in_epoch["epoch"] and len(states) == self.group.size:
            set_dropout_states(model, states[self.group.rank])

    def on_epoch_end(self, epoch, logs, model):
        if self.group.is_root:
            save_checkpoint(self.path, model, self.optimizer, epoch, self.history,
                            extra=self._extra())  # fmt: skip
        return False

    def save_step(self, model, sums):
        """Write the checkpoint after step sums.step of epoch sums.epoch (sums: EpochSums).

        Every rank calls it: rank 0 writes while the others wait, so no rank ends before
        the file is in place; an error writing it is raised on every rank.
        """
        extra = self._extra() | {"in_epoch": sums.state()}
        if self.group.size > 1:  # every rank's Dropout generators, in rank order
            extra["rank_dropout"] = self.group.gather(dropout_states(model))

        def write():
            save_checkpoint(self.path, model, self.optimizer, sums.epoch - 1, self.history,
                            extra=extra, step=sums.step)  # fmt: skip

        self.group.on_root(write)
