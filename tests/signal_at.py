"""Run a training command line that sends itself a signal after a given step (for the tests).

    python tests/signal_at.py EPOCH STEP SIGNAL RANK -m minicnn train ...
    mpiexec -n 2 python tests/signal_at.py 1 3 SIGTERM 1 examples/train_paper.py ...

After step STEP of epoch EPOCH, the process of rank RANK (0 for one process) sends itself
SIGNAL, as Slurm or Ctrl-C would, so that a test stops a run at a step it knows. The command
line runs as `python -m minicnn ...` or `python SCRIPT ...` would run it.
"""

import os
import runpy
import signal
import sys

import minicnn.cli.train
from minicnn.distributed import world


class SignalAt:
    """A callback: after (epoch, step), rank `rank` sends itself signum."""

    def __init__(self, epoch, step, signum, rank):
        self.at, self.signum, self.rank, self.epoch = (epoch, step), signum, rank, None

    def on_epoch_begin(self, epoch, model):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs):
        if (self.epoch, step) == self.at and world().rank == self.rank:
            os.kill(os.getpid(), self.signum)


def main():
    epoch, step, name, rank, *command = sys.argv[1:]
    signal_at = SignalAt(int(epoch), int(step), signal.Signals[name], int(rank))
    fit = minicnn.cli.train.train_fit

    def fit_and_signal(*args, callbacks=(), **kwargs):
        return fit(*args, callbacks=[*callbacks, signal_at], **kwargs)

    minicnn.cli.train.train_fit = fit_and_signal
    if command[0] == "-m":
        sys.argv = [command[1], *command[2:]]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command
        runpy.run_path(command[0], run_name="__main__")


if __name__ == "__main__":
    main()
