"""The output head: how many units the last layer has, and how its logits become classes.

The rule, written once in `head_units`: a softmax head has one unit per class; so has a
sigmoid head, except for two classes, where it is a single unit with
P(class 1) = sigmoid(logit) and P(class 0) = 1 - P(class 1). Everything else (the number of
classes of a model, the loss targets, the predicted class, the probabilities) is derived
from that rule here.

Shapes: logits (N, U) with U units; labels y int (N,); probabilities (N, K) with K classes.
"""

import numpy as np

from .layers.activations import sigmoid, softmax

OUTPUTS = ("softmax", "sigmoid")


def head_units(num_classes, output):
    """U, the units of the last layer for K classes: K, or 1 for a two-class sigmoid head."""
    if output not in OUTPUTS:
        raise ValueError(f'output must be "softmax" or "sigmoid", got {output!r}')
    return 1 if output == "sigmoid" and num_classes == 2 else num_classes


def single_unit(units, output):
    """True when `units` units stand for two classes: one logit, as head_units(2) decides."""
    return units == 1 and head_units(2, output) == 1


def num_classes(units, output):
    """K, the classes a head of U units tells apart (the inverse of head_units)."""
    return 2 if single_unit(units, output) else units


def probabilities(logits, output):
    """Logits (N, U) -> class probabilities (N, K): softmax, or sigmoid per unit.

    A single sigmoid unit gives (N, 2): [P(class 0), P(class 1)], in class_names order.
    """
    if output != "sigmoid":
        return softmax(logits, axis=1)
    p = sigmoid(logits)
    return np.concatenate([1 - p, p], axis=1) if single_unit(p.shape[1], output) else p


def logits_of(probs, output):
    """Class probabilities (N, K) -> logits (N, U) that `probabilities` maps back to them.

    The inverse of `probabilities`, for probabilities that come from no single forward pass
    (an average over test-time views): softmax gives log p (a logit is defined up to a
    constant per row), sigmoid gives log(p / (1 - p)) per unit, from P(class 1) for a single
    unit. p is clipped away from 0 and 1 first, so that the logits are finite.
    """
    probs = np.asarray(probs)
    info = np.finfo(probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.float64)
    p = np.clip(probs, info.tiny, 1 - info.epsneg)
    if output != "sigmoid":
        return np.log(p)
    if p.shape[1] == 2:  # two classes under a sigmoid head: one unit, P(class 1)
        p = p[:, 1:]
    return np.log(p) - np.log1p(-p)


def predictions(logits, output):
    """Class index (N,) per row of logits (N, U): argmax, or logit > 0 for a single unit."""
    if single_unit(logits.shape[1], output):
        return (logits[:, 0] > 0).astype(np.int64)
    return logits.argmax(axis=1)


def sigmoid_targets(y, logits):
    """Class indices y (N,) -> 0/1 float targets of the logits' shape, for BinaryCrossEntropy.

    One unit: (N, 1), 1 for class 1. One unit per class: one-hot (N, K).
    """
    if single_unit(logits.shape[1], "sigmoid"):
        return y.astype(logits.dtype)[:, None]
    onehot = np.zeros(logits.shape, dtype=logits.dtype)
    onehot[np.arange(len(y)), y] = 1
    return onehot
