"""Preemption: on SIGTERM or SIGINT, finish the step, write its checkpoint, and stop.

Clusters end jobs with SIGTERM and a grace period: Slurm at a time limit or to preempt a job
(`--signal`), Kubernetes and systemd, usually 30 to 90 s. Ctrl-C sends SIGINT. The handler
only notes the signal; after the step in progress, the callback has the checkpoint of that
step written (Checkpoint.save_step, atomically) and raises TrainingInterrupted, which names
the file and the signal. fit(..., resume=True) goes on from that step and ends with the same
weights, bit for bit, as a run that was never stopped. A second Ctrl-C stops at once
(KeyboardInterrupt), without a checkpoint of the step.

Under MPI, a signal may reach one rank before another. Each rank's vote (a 1 for the signal
it received) is summed with the gradients of every step (minicnn.distributed.DataParallel),
so all ranks see the same sum after the same step and stop there; rank 0 writes, then every
rank raises.
"""

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)  # the order decides when ranks got different ones


class TrainingInterrupted(Exception):
    """Training stopped on a signal after a step; the checkpoint at `checkpoint` holds it.

    signum: the signal (signal.SIGTERM, ...); epoch, step: the step it stopped after;
    exit_code: 128 + signum, the code of a process ended by that signal (143 for SIGTERM,
    130 for SIGINT), which schedulers and shells understand.
    """

    def __init__(self, checkpoint, signum, epoch, step):
        self.checkpoint, self.signum, self.epoch, self.step = checkpoint, signum, epoch, step
        self.signal_name = signal.Signals(signum).name
        super().__init__(
            f"{self.signal_name}: stopped after step {step} of epoch {epoch}; "
            f"its checkpoint is {checkpoint}"
        )

    @property
    def exit_code(self):
        return 128 + int(self.signum)


class Preemption:
    """The callback: handlers for `signals` while fit runs, a stop after the step they come in.

    checkpoint: fit's Checkpoint callback, whose save_step writes the step's checkpoint.
    votes: set before each step ends by DataParallel under MPI (every rank's vote() summed);
    None: this process decides alone.
    """

    def __init__(self, checkpoint, signals=SIGNALS):
        self.checkpoint, self.signals = checkpoint, tuple(signals)
        self.received = None  # the first signal received
        self.votes = None
        self.model, self.epoch, self._previous = None, None, {}

    def _handle(self, signum, frame):
        """The signal handler: note the signal, nothing else (the step goes on)."""
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: stop now
        self.received = self.received or signum

    def vote(self):
        """This rank's vote: for each of `signals`, 1.0 if it is the one received, else 0.0."""
        return [float(self.received == s) for s in self.signals]

    def on_train_begin(self, model, history):
        self.model, self.received, self.votes = model, None, None
        if threading.current_thread() is not threading.main_thread():
            return  # Python lets the main thread alone set handlers: signals act as before
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)

    def on_epoch_begin(self, epoch, model):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs):
        votes = self.votes if self.votes is not None else self.vote()
        self.votes = None
        if not any(votes):
            return
        signum = next(s for s, v in zip(self.signals, votes) if v)
        self.checkpoint.save_step(self.model, logs["sums"])  # rank 0 writes, the others wait
        raise TrainingInterrupted(self.checkpoint.path, signum, self.epoch, step)

    def on_train_end(self, model, history):
        for s, previous in self._previous.items():
            signal.signal(s, signal.SIG_DFL if previous is None else previous)
        self._previous = {}
