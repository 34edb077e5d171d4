"""The training loop: `fit` a model on a Split, `evaluate` it, with checkpoints and a NaN guard.

    history = fit(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-4),
                  ds.train, ds.val, epochs=20, batch_size=32, checkpoint="run/checkpoint.npz",
                  callbacks=[SaveBest("run/model.npz")])
    result = evaluate(model, ds.test, SoftmaxCrossEntropy())

One epoch = one pass over the shuffled training split in mini-batches: forward, loss,
backward, optimizer step. The shuffle (and augmentation) of epoch e uses a seed derived from
(seed, e), and every Dropout layer's generator is saved in the checkpoint, so a run resumed
after epoch k ends with the same weights, bit for bit, as a run that was never interrupted.
"""

import math
import os
import time

import numpy as np
from tqdm import tqdm

from . import heads
from .data import batches
from .distributed import group, stop_all_ranks_on_error, world
from .io import ModelFileError, load_checkpoint, save, save_checkpoint
from .losses import BinaryCrossEntropy
from .metrics import top_k_accuracy


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch, step and checkpoint."""


# ----------------------------------------------------------------------------- helpers


def num_classes_of(model):
    """K, the number of classes the model tells apart (2 for a one-unit sigmoid head)."""
    return heads.num_classes(model.output_shape(model.input_shape)[-1], model.output)


def check_split(model, split, name="train"):
    """Raise ValueError before training if a split does not fit the model."""
    if model.input_shape is None:
        raise ValueError("fit needs a model built with input_shape (C, H, W)")
    if split.images.ndim != 4 or split.images.shape[1:] != tuple(model.input_shape):
        raise ValueError(
            f"the {name} images have shape {split.images.shape[1:]} per image, the model "
            f"expects {tuple(model.input_shape)} (C, H, W); load the data with "
            f"image_size={model.input_shape[1]}, channels={model.input_shape[0]}"
        )
    K = num_classes_of(model)
    labels = split.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= K):
        bad = labels[(labels < 0) | (labels >= K)]
        raise ValueError(
            f"the {name} split has labels outside the model's {K} classes [0, {K - 1}]: "
            f"{sorted(set(bad.tolist()))[:10]} ({len(bad)} images)"
        )


def targets_for(loss_fn, logits, y):
    """Class indices (N,) as the loss wants them: as is, or 0/1 floats for a sigmoid head."""
    return heads.sigmoid_targets(y, logits) if isinstance(loss_fn, BinaryCrossEntropy) else y


def _normalize_of(model, normalize):
    if normalize is not None:
        return normalize
    return None if model.mean is None else (model.mean, model.std)


def epoch_seed(seed, epoch):
    """The shuffle / augmentation seed of an epoch, a function of (seed, epoch) only."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _params_finite(model):
    return all(np.isfinite(p.data).all() for p in model.parameters())


# ----------------------------------------------------------------------------- evaluate


def evaluate(model, split, loss_fn=None, batch_size=256, normalize=None, tta=None):
    """Run the model over a split in evaluation mode (no dropout).

    Inputs:
    - split: Split with uint8 images (N, C, H, W), int64 labels (N,)
    - loss_fn: optional; when given, the mean loss is reported
    - normalize: (mean, std) per channel; None takes model.mean / model.std when set
    - tta: None, or "flip": each image's probabilities are the mean over it and its mirror
      (Sequential.forward_views); the loss and the predictions are those of that mean

    Returns a dict:
    - loss (float or None), accuracy (float), top5 (float, only when K > 5)
    - probs float (N, K), predictions int64 (N,), labels int64 (N,)
    """
    normalize = _normalize_of(model, normalize)
    total_loss, probs, preds = 0.0, [], []
    for x, y in batches(split, batch_size, shuffle=False, normalize=normalize):
        logits, p = model.forward_views(x, tta, batch_size)
        if loss_fn is not None:
            total_loss += loss_fn.forward(logits, targets_for(loss_fn, logits, y)) * len(y)
        probs.append(p)
        preds.append(heads.predictions(logits, model.output))
    K = num_classes_of(model)
    probs = np.concatenate(probs) if probs else np.zeros((0, K), np.float32)
    preds = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    labels = split.labels
    result = {
        "loss": total_loss / len(labels) if loss_fn is not None and len(labels) else None,
        "accuracy": float(np.mean(preds == labels)) if len(labels) else float("nan"),
    }
    if K > 5:
        result["top5"] = top_k_accuracy(labels, probs, 5)
    result.update(probs=probs, predictions=preds, labels=labels)
    return result


# ----------------------------------------------------------------------------- callbacks


class SaveBest:
    """Save the model (minicnn.save) each time `monitor` improves: the best epoch's weights.

    monitor: a history key, "val_acc" (higher is better) or "val_loss" (lower is better).
    metadata: dict stored in the model file (e.g. the settings).
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
            if world().is_root:  # under MPI, rank 0 alone writes
                save(model, self.path, metadata=meta)
        return False


class EarlyStopping:
    """Stop when `monitor` has not improved by min_delta for `patience` epochs."""

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


# ----------------------------------------------------------------------------- fit


@stop_all_ranks_on_error(TrainingDiverged)  # under MPI: a rank that fails stops them all
def fit(
    model,
    loss_fn,
    optimizer,
    train,
    val=None,
    epochs=20,
    batch_size=32,
    *,
    seed=0,
    augment=None,
    normalize=None,
    callbacks=(),
    checkpoint=None,
    resume=False,
    schedule=None,
    distributed=None,
    sync_batchnorm=False,
    progress=True,
    print_fn=print,
):
    """Train `model` for `epochs` epochs and return the history.

    Inputs:
    - model: Sequential with input_shape; loss_fn: SoftmaxCrossEntropy or BinaryCrossEntropy
    - optimizer: Adam, AdamW or SGD over model.parameters() (or its parameter groups)
    - train, val: Split (val may be None); labels are checked against the model's classes and
      image shapes against its input before the first step
    - seed: shuffle / augmentation seed (epoch e uses epoch_seed(seed, e))
    - augment: None or a callable augment(x, rng) such as minicnn.data.Augment
    - normalize: (mean, std) per channel; None takes model.mean / model.std when set
    - callbacks: objects with on_train_begin(model, history) and / or
      on_epoch_end(epoch, logs, model) -> True to stop (SaveBest, EarlyStopping)
    - checkpoint: path of checkpoint.npz, written (atomically) after every epoch
    - resume: continue from `checkpoint` when it exists (epochs counts the total)
    - schedule: None or a minicnn.schedules object over `optimizer`; fit calls its step()
      after every optimizer step, and the checkpoint keeps its state
    - distributed: data-parallel over MPI ranks (minicnn.distributed): None trains on every
      rank when launched by mpiexec / srun with more than one, True insists on MPI, False
      trains in this process alone. Each global batch of batch_size images is cut into one
      part per rank; rank 0 alone prints and writes the checkpoint
    - sync_batchnorm: with several ranks, BatchNorm normalises with the statistics of the whole
      global batch (as one process does) instead of each rank's part
    - progress: a tqdm bar per epoch; print_fn: where the per-epoch line goes (None: silent)

    Returns:
    - history: list of dicts, one per epoch: epoch (1-based), train_loss, train_acc,
      val_loss, val_acc (None without val), seconds, lr (the rate of the epoch's last step)

    Raises TrainingDiverged when a loss is NaN or infinite; the last checkpoint stays as it was.
    """
    dist = group(distributed)  # the MPI ranks, or this process alone (every call a no-op)
    dist.agree(model, train, val, batch_size=batch_size, epochs=epochs, seed=seed,
               lr=float(optimizer.lr), sync_batchnorm=sync_batchnorm,
               augment=augment is not None)  # fmt: skip
    check_split(model, train, "train")
    if val is not None:
        check_split(model, val, "val")
    if len(train) == 0:
        raise ValueError("the train split is empty")
    if not any(p.trainable for p in getattr(optimizer, "parameters", model.parameters())):
        raise ValueError(
            f"every parameter the optimizer updates is frozen (frozen layers: "
            f"{model.frozen()}), so training would change nothing; unfreeze some first "
            "(model.unfreeze() for all but the head, model.unfreeze(len(model)) for all)"
        )
    normalize = _normalize_of(model, normalize)
    say = print_fn if print_fn and dist.is_root else (lambda *a, **k: None)

    history, start, last_good = [], 0, None
    state = dist.on_root(lambda: _resume_state(checkpoint, model, optimizer, resume))
    if state is not None:
        if state["extra"].get("seed", seed) != seed:
            raise ModelFileError(  # a checkpoint this run cannot continue
                f"{checkpoint} was trained with seed {state['extra']['seed']}, not {seed}: "
                "resume with the same seed (it also fixed the shuffling and, in the examples, "
                "the data split), or start a new run in another folder"
            )
        saved = state["extra"].get("schedule")
        if (saved is None) != (schedule is None):
            raise ModelFileError(  # a checkpoint this run cannot continue
                f"{checkpoint} was trained {'without' if saved is None else 'with'} a "
                "learning-rate schedule: resume with the same schedule, or start a new run"
            )
        if schedule is not None:
            schedule.load_state_dict(saved)
        history, start, last_good = state["history"], state["epoch"], state["epoch"]
        say(f"resumed from {checkpoint} after epoch {start}")
    dist.start(model, optimizer, sync_batchnorm)  # rank 0's weights and state on every rank
    for cb in callbacks:
        if hasattr(cb, "on_train_begin"):
            cb.on_train_begin(model, history)
    if any(getattr(cb, "stopped", False) for cb in callbacks):  # a resumed, finished run
        say(f"the run had already stopped early after epoch {start}")
        return history

    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        bar = tqdm(
            total=len(train),
            desc=f"epoch {epoch}/{epochs}",
            unit="img",
            leave=False,
            disable=not progress or not dist.is_root,
            dynamic_ncols=True,
        )
        dist.seed_dropout(model, seed, epoch)
        steps = batches(train, batch_size, seed=epoch_seed(seed, epoch), augment=augment,
                        normalize=normalize, part=dist.part)  # fmt: skip
        with bar:
            for step, (x, y) in enumerate(steps, start=1):
                logits = model.forward(x, training=True)
                loss = loss_fn.forward(logits, targets_for(loss_fn, logits, y))
                B = min(batch_size, len(train) - (step - 1) * batch_size)  # the global batch
                share = dist.share(loss_fn, y, B)  # 1 in one process
                model.backward(loss_fn.backward() * share)
                hits = int((heads.predictions(logits, model.output) == y).sum())
                loss, hits = dist.allreduce_gradients(model, loss * share, hits)  # all ranks'
                if not math.isfinite(loss):
                    kept = (
                        f"the last good checkpoint, {checkpoint} (epoch {last_good}), is kept"
                        if last_good is not None
                        else "no checkpoint had been written yet"
                    )
                    raise TrainingDiverged(
                        f"the training loss became {loss} at epoch {epoch}, step {step}; "
                        f"stopped; {kept}. Try a smaller learning rate."
                    )
                lr = float(optimizer.lr)  # the rate of this step
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                seen += B
                loss_sum += loss * B
                correct += int(hits)
                bar.update(B)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        if not _params_finite(model):
            raise TrainingDiverged(
                f"the weights became NaN or infinite in epoch {epoch}; stopped; "
                + (f"{checkpoint} (epoch {last_good}) is kept" if last_good else "no checkpoint")
            )

        dist.average_buffers(model)  # BatchNorm's running statistics, the same on every rank
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen}
        if val is not None and len(val):
            v = evaluate(model, dist.shard(val), loss_fn, normalize=normalize)  # rank's share
            row.update(zip(("val_loss", "val_acc"), dist.gather_metrics(v)))
        else:
            row.update(val_loss=None, val_acc=None)
        row["seconds"] = time.perf_counter() - t0
        row["lr"] = lr
        history.append(row)
        say(format_row(row, epochs, len(train)))

        stop = False
        for cb in callbacks:  # before the checkpoint: a crash in between replays the epoch
            if hasattr(cb, "on_epoch_end"):
                stop = bool(cb.on_epoch_end(epoch, row, model)) or stop
        if checkpoint and dist.is_root:
            extra = {"seed": seed}
            if schedule is not None:
                extra["schedule"] = schedule.state_dict()
            save_checkpoint(checkpoint, model, optimizer, epoch, history, extra=extra)
        last_good = epoch if checkpoint else last_good
        if stop:
            say(f"stopping early after epoch {epoch}")
            break
    return history


def _resume_state(checkpoint, model, optimizer, resume):
    """Load `checkpoint` into the model and optimizer if resuming and it exists: its epoch,
    history and extra (JSON-ready), else None. Under MPI, rank 0 alone reads it."""
    if not (resume and checkpoint and os.path.exists(checkpoint)):
        return None
    state = load_checkpoint(checkpoint, model, optimizer)
    return {key: state[key] for key in ("epoch", "history", "extra")}


def format_row(row, epochs, n_train):
    """One line per epoch: the numbers the paper reports, plus time and speed."""
    line = (
        f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:6.1%}"
    )
    if row.get("val_loss") is not None:
        line += f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:6.1%}"
    return line + f"  {row['seconds']:5.1f} s ({n_train / row['seconds']:,.0f} img/s)"
