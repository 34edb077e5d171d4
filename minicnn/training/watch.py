"""LossWatch: one warning line when the training loss grows by orders of magnitude.

A learning rate far too high does not always make the loss NaN or infinite (NonFiniteGuard
stops those): the weights can grow step after step while every number stays finite, and the
run ends with a loss of 1e31 and nothing said. LossWatch compares each epoch's mean training
loss with two references:

- start: the loss of the run's first step, the untrained model (a resumed run: its first
  epoch's mean loss), raised to the loss of each warning once one is given;
- previous: the mean training loss of the epoch before.

It warns after epoch e when loss_e >= GROWTH * start, or when loss_e >= GROWTH * previous and
loss_e > start. The second condition keeps quiet about a loss that jumps from 0.001 to 0.1 late
in training: a hundredfold, but still below where the run began. Raising start after a warning
says each hundredfold growth once, not again at every epoch that stays up there. The warning
goes through fit's print function (under MPI rank 0 alone prints); training goes on.
"""

GROWTH = 100.0  # two orders of magnitude


class LossWatch:
    """Warn (through say) when an epoch's training loss is GROWTH times the run's first step's
    loss (or the last warned one) or, while above it, GROWTH times the previous epoch's.
    say None: silent.

    .warnings: the lines said, for code and tests to read.
    """

    def __init__(self, say=None, growth=GROWTH):
        self.say, self.growth = say, float(growth)
        self.start = self.previous = None
        self.warnings = []

    def on_train_begin(self, model, history):
        if history:  # resumed: the first step's loss is gone; its epoch's mean stands in
            self.start, self.previous = history[0]["train_loss"], history[-1]["train_loss"]

    def on_train_batch_end(self, step, logs):
        if self.start is None:
            self.start = float(logs["loss"])  # the untrained model's loss

    def on_epoch_end(self, epoch, logs, model):
        loss, start, previous = logs["train_loss"], self.start, self.previous
        self.previous = loss
        if start is None or start <= 0:
            return False
        if loss >= self.growth * start:
            first = "the first step's" if not self.warnings else "the last warning's"
            than = f"{loss / start:.3g} times {first} {start:.4g}"
        elif previous is not None and previous > 0 and loss >= self.growth * previous:
            if loss <= start:
                return False
            than = f"{loss / previous:.3g} times epoch {epoch - 1}'s {previous:.4g}"
        else:
            return False
        line = (
            f"warning: the training loss grew to {loss:.4g} in epoch {epoch}, {than}: the "
            "learning rate may be too high (the loss is still finite, so training goes on)"
        )
        self.start = loss  # the next warning needs another hundredfold
        self.warnings.append(line)
        if self.say is not None:
            self.say(line)
        return False
