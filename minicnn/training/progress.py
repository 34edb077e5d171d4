"""Progress: a bar per epoch on a terminal, and one line per epoch wherever output goes."""

import sys

from tqdm import tqdm


def loss_text(loss):
    """A loss as the log shows it: 4 decimals, or 4 significant digits once it is huge."""
    return f"{loss:.4f}" if abs(loss) < 1e5 else f"{loss:.4g}"


def format_row(row, epochs, n_train):
    """One line per epoch: the numbers the paper reports, plus time and speed."""
    line = (
        f"epoch {row['epoch']:>3}/{epochs}  train loss {loss_text(row['train_loss'])} "
        f"acc {row['train_acc']:6.1%}"
    )
    if row.get("val_loss") is not None:
        line += f"  val loss {loss_text(row['val_loss'])} acc {row['val_acc']:6.1%}"
    return line + f"  {row['seconds']:5.1f} s ({n_train / row['seconds']:,.0f} img/s)"


class Progress:
    """A tqdm bar during each epoch, only when stderr is a terminal (a log file gets no
    carriage-return frames), and format_row's line after it through print_fn (None: none).

    epochs: the run's total; n_train: images per epoch; bar=False: never a bar.
    """

    def __init__(self, epochs, n_train, bar=True, print_fn=print):
        self.epochs, self.n_train, self.print_fn = epochs, n_train, print_fn
        self.bar = bool(bar) and sys.stderr.isatty()
        self._bar = None

    def on_epoch_begin(self, epoch, model):
        self.seen, self.loss_sum, self.correct = 0, 0.0, 0
        if self.bar:
            self._bar = tqdm(total=self.n_train, desc=f"epoch {epoch}/{self.epochs}",
                             unit="img", leave=False, dynamic_ncols=True)  # fmt: skip

    def on_train_batch_end(self, step, logs):
        if self._bar is None:
            return
        n = logs["size"]
        self.seen, self.loss_sum = self.seen + n, self.loss_sum + logs["loss"] * n
        self.correct += logs["hits"]
        self._bar.update(n)
        if step % 10 == 0:
            self._bar.set_postfix(loss=loss_text(self.loss_sum / self.seen),
                                  acc=f"{self.correct / self.seen:.3f}")  # fmt: skip

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_epoch_end(self, epoch, logs, model):
        self._close()
        if self.print_fn is not None:
            self.print_fn(format_row(logs, self.epochs, self.n_train))
        return False

    def on_train_end(self, model, history):
        self._close()
