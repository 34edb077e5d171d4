"""Classification metrics in plain NumPy: accuracy, top-k, confusion matrix, two-class scores.

Conventions: y_true int (N,) class indices; y_pred int (N,); probs float (N, K); for two
classes, class 1 is the positive one (pneumonia, say) and `scores` (N,) is P(class 1).
"""

import numpy as np


def accuracy(y_true, y_pred):
    """Fraction of y_pred equal to y_true. Returns a float in [0, 1] (nan for N = 0)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def top_k_accuracy(y_true, probs, k=5):
    """Fraction of rows whose true class is among the k highest probs (N, K).

    Ties are broken by class index (argsort is stable on the negated scores).
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (N, k)
    return float(np.mean((top == y_true[:, None]).any(axis=1))) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, num_classes):
    """int64 (K, K): row = true class, column = predicted class, entry = count."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def roc_auc(y_true, scores):
    """Area under the ROC curve: P(score of a random positive > score of a random negative).

    Computed from ranks (Mann-Whitney U), ties counted as one half. nan when only one
    class is present.
    """
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average rank (1-based) over each run of equal scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _ratio(a, b):
    return float(a / b) if b else float("nan")


def binary_metrics(y_true, scores, threshold=0.5):
    """Screening metrics for two classes, class 1 positive.

    Inputs: y_true int (N,) in {0, 1}; scores float (N,) = P(class 1); predicted positive
    when score >= threshold.
    Returns a dict: tp, fp, tn, fn (ints); sensitivity = tp/(tp+fn) (recall, true positive
    rate); specificity = tn/(tn+fp); precision = tp/(tp+fp); f1 = 2 p r / (p + r);
    accuracy; auc (roc_auc). A ratio with a zero denominator is nan.
    """
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(scores) >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    tn, fn = int((~pred & ~y).sum()), int((~pred & y).sum())
    sensitivity = _ratio(tp, tp + fn)
    precision = _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)  # = 2 p r / (p + r), defined when p or r is 0
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "precision": precision,
        "f1": f1,
        "accuracy": _ratio(tp + tn, len(y)),
        "auc": roc_auc(y, scores),
    }
