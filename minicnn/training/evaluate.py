"""evaluate: run a model over a split in evaluation mode, optionally over test-time views."""

import numpy as np

from .. import heads
from ..data import batches
from ..losses import BinaryCrossEntropy
from ..metrics import top_k_accuracy


def num_classes_of(model):
    """K, the number of classes the model tells apart (2 for a one-unit sigmoid head)."""
    return heads.num_classes(model.output_shape(model.input_shape)[-1], model.output)


def targets_for(loss_fn, logits, y):
    """Class indices (N,) as the loss wants them: as is, or 0/1 floats for a sigmoid head."""
    return heads.sigmoid_targets(y, logits) if isinstance(loss_fn, BinaryCrossEntropy) else y


def normalize_of(model, normalize):
    """(mean, std) per channel: as given, else the model's own (None when it has none)."""
    if normalize is not None:
        return normalize
    return None if model.mean is None else (model.mean, model.std)


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
    normalize = normalize_of(model, normalize)
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
