"""Classification metrics in plain NumPy: accuracy, top-k, confusion matrix, two-class scores,
and screening at an operating point: the threshold chosen on validation, the figures at it,
the ROC curve and bootstrap intervals; calibration: the Brier score, the expected calibration
error and the reliability diagram, with bootstrap intervals drawn from the same resamples.

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


def binary_metrics(y_true, scores, threshold=0.5):
    """Screening metrics for two classes, class 1 positive.

    Inputs: y_true int (N,) in {0, 1}; scores float (N,) = P(class 1); predicted positive
    when score >= threshold.
    Returns a dict: tp, fp, tn, fn (ints); sensitivity = tp/(tp+fn) (recall, true positive
    rate); specificity = tn/(tn+fp); precision = tp/(tp+fp); f1 = 2 p r / (p + r);
    accuracy; auc (roc_auc). A ratio with a zero denominator is nan. (screening_metrics
    below gives these and the NPV at a threshold; bootstrap their intervals.)
    """
    m = screening_metrics(y_true, scores, threshold)
    keys = ("tp", "fp", "tn", "fn", "sensitivity", "specificity")
    return {k: m[k] for k in keys} | {
        "precision": m["ppv"],
        "f1": m["f1"],  # = 2 p r / (p + r), defined when p or r is 0
        "accuracy": m["accuracy"],
        "auc": roc_auc(y_true, scores),
    }


# ----------------------------------------------------------------------------- screening
#
# A two-class screening test is reported at an operating point: a threshold t on
# P(class 1), chosen on the validation split (never on the test split), then applied to the
# test split, with a bootstrap interval for every figure.

SCREENING_FIGURES = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1")
FALLBACK_THRESHOLD = 0.5


def _confusion_counts(y, pred):
    """tp, fp, tn, fn of boolean arrays y (true class 1) and pred (predicted class 1)."""
    return (
        int((pred & y).sum()),
        int((pred & ~y).sum()),
        int((~pred & ~y).sum()),
        int((~pred & y).sum()),
    )


def _figures(tp, fp, tn, fn):
    """The screening figures from the four counts (scalars, or arrays of one shape)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "sensitivity": np.divide(tp, tp + fn),  # true positive rate, recall
            "specificity": np.divide(tn, tn + fp),  # true negative rate
            "ppv": np.divide(tp, tp + fp),  # positive predictive value, precision
            "npv": np.divide(tn, tn + fn),  # negative predictive value
            "accuracy": np.divide(tp + tn, tp + fp + tn + fn),
            "f1": np.divide(2 * tp, 2 * tp + fp + fn),  # = 2 ppv sens / (ppv + sens)
        }


def screening_metrics(y_true, scores, threshold):
    """The figures of a screening test at one threshold, class 1 positive.

    Inputs: y_true int (N,) in {0, 1}; scores float (N,) = P(class 1); an image is called
    positive when its score >= threshold.
    Returns a dict: threshold; tp, fp, tn, fn (ints); sensitivity = tp/(tp+fn),
    specificity = tn/(tn+fp), ppv = tp/(tp+fp), npv = tn/(tn+fn), accuracy, f1 =
    2tp/(2tp+fp+fn) (floats; nan where the denominator is 0).
    """
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(scores) >= threshold
    tp, fp, tn, fn = _confusion_counts(y, pred)
    figures = {k: float(v) for k, v in _figures(tp, fp, tn, fn).items()}
    return {"threshold": float(threshold), "tp": tp, "fp": fp, "tn": tn, "fn": fn, **figures}


def choose_threshold(y_true, scores, target_sensitivity=0.95, threshold=None):
    """The decision threshold of a two-class model, chosen on the validation split.

    Inputs: y_true int (N,) in {0, 1} and scores float (N,) = P(class 1) of the VALIDATION
    images (or None: no validation split).
    - threshold=None: the highest t whose validation sensitivity, the share of positives
      with score >= t, is at least target_sensitivity (0 < target <= 1). That t is the
      k-th highest positive score, k = the fewest positives that reach the target.
    - threshold given: that t, as fixed ("fixed").
    A validation split without positives or without negatives (or none at all) cannot
    choose: t falls back to 0.5 and `note` says why.
    Returns a dict: threshold (float), rule ("target_sensitivity", "fixed" or "fallback"),
    target_sensitivity, note (None or the reason for the fallback), and val: the
    screening_metrics at t on the validation images (None without them).
    """
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target_sensitivity must be in (0, 1], got {target_sensitivity}")
    result = {"target_sensitivity": float(target_sensitivity), "note": None}
    y = None if y_true is None else np.asarray(y_true).astype(bool)
    s = None if scores is None else np.asarray(scores, dtype=np.float64)
    if threshold is not None:
        result.update(threshold=float(threshold), rule="fixed")
    else:
        if y is None or len(y) == 0:
            result["note"] = "there is no validation split to choose a threshold on"
        elif y.all() or not y.any():
            lacking = "negative (class 0)" if y.all() else "positive (class 1)"
            result["note"] = (
                f"the validation split has no {lacking} images, so it cannot choose a threshold"
            )
        if result["note"] is not None:
            result["note"] += f"; falling back to {FALLBACK_THRESHOLD}"
            result.update(threshold=FALLBACK_THRESHOLD, rule="fallback")
        else:
            pos = np.sort(s[y])[::-1]  # positive scores, highest first
            n = len(pos)
            # sensitivity at t = pos[k-1] is (positives >= pos[k-1]) / n >= k / n (ties)
            k = next(k for k in range(1, n + 1) if k / n >= target_sensitivity)
            result.update(threshold=float(pos[k - 1]), rule="target_sensitivity")
    have_val = y is not None and len(y) > 0
    result["val"] = screening_metrics(y, s, result["threshold"]) if have_val else None
    return result


def roc_curve(y_true, scores):
    """The ROC curve: fpr, tpr (float (M,)) and the thresholds (M,), highest first.

    Point j calls positive every score >= thresholds[j]; the first point is (0, 0) at
    threshold +inf, the last (1, 1). One point per distinct score (as sklearn with
    drop_intermediate=False). nan rates where a class is absent.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1] if len(s) else np.zeros(0, int)
    tps, fps = np.cumsum(y)[last], np.cumsum(~y)[last]  # counts at or above each score
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.r_[0.0, tps / y.sum()]
        fpr = np.r_[0.0, fps / (~y).sum()]
    return fpr, tpr, np.r_[np.inf, s[last]]


def _weighted_auc(weights, y, scores):
    """ROC AUC of resamples given as multiplicities: weights (R, N) -> (R,).

    The same as roc_auc on each resample: over pairs (positive i, negative j), weighted by
    w_i * w_j, the share with s_i > s_j, ties counted one half.
    """
    values, group = np.unique(scores, return_inverse=True)  # G distinct scores, sorted
    G = len(values)
    P = np.zeros((len(weights), G))
    Q = np.zeros((len(weights), G))
    np.add.at(P.T, group[y], weights[:, y].T)  # positive weight per score group
    np.add.at(Q.T, group[~y], weights[:, ~y].T)  # negative weight per score group
    below = np.cumsum(Q, axis=1) - Q  # negative weight strictly below each group
    pairs = (P * (below + 0.5 * Q)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pairs / (P.sum(axis=1) * Q.sum(axis=1))


def bootstrap(y_true, scores, threshold, resamples=2000, seed=0, level=0.95, block=250):
    """95% bootstrap intervals of every screening figure at `threshold`, and of ROC AUC.

    Each resample draws N images from the N given, with replacement (rng =
    np.random.default_rng(seed), one rng.integers(0, N, N) per resample, in order), and
    computes every figure on them; the interval is the percentile interval, the
    (1 - level)/2 and (1 + level)/2 quantiles (np.nanpercentile, linear) of the resampled
    values. A resample where a figure is undefined (no positives drawn, say) is left out
    of that figure's interval; `defined` says how many resamples each one used.
    Returns a dict: figure -> {"value": on all N images, "low", "high", "defined"} for
    SCREENING_FIGURES and "auc", plus "resamples", "seed", "level".
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    pred = s >= threshold
    draws = {k: [] for k in (*SCREENING_FIGURES, "auc")}
    for weights in _resample_weights(len(y), resamples, seed, block):
        tp, fp = weights @ (pred & y), weights @ (pred & ~y)
        tn, fn = weights @ (~pred & ~y), weights @ (~pred & y)
        for k, v in _figures(tp, fp, tn, fn).items():
            draws[k].append(v)
        draws["auc"].append(_weighted_auc(weights, y, s))
    point = screening_metrics(y, s, threshold) | {"auc": roc_auc(y, s)}
    result = {k: _interval(point[k], _cat(v), level) for k, v in draws.items()}
    return result | {"resamples": int(resamples), "seed": seed, "level": level}


def _resample_weights(N, resamples, seed, block):
    """The bootstrap's resamples as multiplicities: float (R, N) blocks, R <= block.

    rng = np.random.default_rng(seed), one rng.integers(0, N, N) per resample, in order, so
    every function that draws through here with one seed sees the same resamples.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, block):
        R = min(block, resamples - start)
        idx = rng.integers(0, N, (R, N)) if N else np.zeros((R, 0), np.intp)
        # multiplicity of each image in each resample: weights (R, N)
        weights = np.bincount((idx + N * np.arange(R)[:, None]).ravel(), minlength=R * N)
        yield weights.reshape(R, N).astype(np.float64)


def _cat(blocks):
    """The draws of all blocks in one array (empty when there were no resamples)."""
    return np.concatenate(blocks) if blocks else np.zeros(0)


def _interval(value, draws, level):
    """{"value", "low", "high", "defined"}: the percentile interval of the finite draws (R,)."""
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    ok = np.isfinite(draws)
    low, high = np.percentile(draws[ok], q) if ok.any() else (np.nan, np.nan)
    return {"value": float(value), "low": float(low), "high": float(high),
            "defined": int(ok.sum())}  # fmt: skip


# ----------------------------------------------------------------------------- calibration
#
# A calibrated model's P(class 1) = 0.8 is right 8 times in 10. Scores are grouped into
# CALIBRATION_BINS equal-width bins on [0, 1]: bin b holds the scores with b <= bins * s < b + 1
# (the last bin also holds s = 1).

CALIBRATION_BINS = 10


def brier_score(y_true, scores):
    """Mean squared error of P(class 1): mean((scores - y_true)^2), 0 is perfect (nan for N = 0).

    Inputs: y_true int (N,) in {0, 1}; scores float (N,) = P(class 1).
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    return float(np.mean((s - y) ** 2)) if len(y) else float("nan")


def _bin_of(scores, bins):
    """Bin index int (N,) of each score, in [0, bins)."""
    return np.clip(np.floor(np.asarray(scores, np.float64) * bins), 0, bins - 1).astype(np.intp)


def reliability_curve(y_true, scores, bins=CALIBRATION_BINS):
    """The reliability diagram's data: per bin, the mean score against the share of positives.

    Inputs: y_true int (N,) in {0, 1}; scores float (N,) = P(class 1); bins: B equal-width bins.
    Returns a dict: edges float (B + 1,) = 0, 1/B, ..., 1; count int (B,); mean_score float (B,)
    (the mean P(class 1) in each bin) and frequency float (B,) (the share of class 1 there),
    both nan in an empty bin; bins = B. A calibrated model has frequency = mean_score.
    """
    y = np.asarray(y_true).astype(np.float64)
    s = np.asarray(scores, dtype=np.float64)
    b = _bin_of(s, bins)
    count = np.bincount(b, minlength=bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_score = np.bincount(b, weights=s, minlength=bins) / count
        frequency = np.bincount(b, weights=y, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {"edges": edges, "count": count.astype(np.int64), "mean_score": mean_score,
            "frequency": frequency, "bins": int(bins)}  # fmt: skip


def expected_calibration_error(y_true, scores, bins=CALIBRATION_BINS):
    """ECE = sum over bins of (n_b / N) * |mean score_b - share of positives_b| (nan for N = 0).

    Equal-width bins on P(class 1) (see reliability_curve); empty bins add nothing. In [0, 1];
    0 when, in every bin, the mean score equals the share of positives.
    """
    y = np.asarray(y_true).astype(np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if not len(y):
        return float("nan")
    b = _bin_of(s, bins)
    gap = np.bincount(b, weights=s, minlength=bins) - np.bincount(b, weights=y, minlength=bins)
    return float(np.abs(gap).sum() / len(y))  # n_b/N * |sum_s/n_b - sum_y/n_b|


def bootstrap_calibration(y_true, scores, bins=CALIBRATION_BINS, resamples=2000, seed=0,
                          level=0.95, block=250):  # fmt: skip
    """95% bootstrap intervals of the Brier score, the ECE and each bin's share of positives.

    The resamples are those of `bootstrap` with the same seed (same draws, same order), and
    the intervals are percentile intervals as there.
    Returns a dict: "brier", "ece" -> {"value", "low", "high", "defined"}; "frequency" ->
    {"value", "low", "high"} float (B,) lists per bin (nan where the bin is empty, in the
    data or in every resample); plus "bins", "resamples", "seed", "level".
    """
    y = np.asarray(y_true).astype(np.float64)
    s = np.asarray(scores, dtype=np.float64)
    N = len(y)
    onehot = np.eye(bins)[_bin_of(s, bins)]  # (N, B): which bin each image falls in
    sq_err, in_bin_s, in_bin_y = (s - y) ** 2, onehot * s[:, None], onehot * y[:, None]
    brier, ece, freq = [], [], []
    for weights in _resample_weights(N, resamples, seed, block):  # (R, N)
        with np.errstate(divide="ignore", invalid="ignore"):
            brier.append(weights @ sq_err / N)
            ece.append(np.abs(weights @ in_bin_s - weights @ in_bin_y).sum(axis=1) / N)
            freq.append((weights @ in_bin_y) / (weights @ onehot))  # (R, B)
    freq = np.concatenate(freq) if freq else np.zeros((0, bins))  # (resamples, B)
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    low, high = np.full(bins, np.nan), np.full(bins, np.nan)
    for k in range(bins):
        ok = np.isfinite(freq[:, k])
        if ok.any():
            low[k], high[k] = np.percentile(freq[ok, k], q)
    curve = reliability_curve(y, s, bins)
    return {
        "brier": _interval(brier_score(y, s), _cat(brier), level),
        "ece": _interval(expected_calibration_error(y, s, bins), _cat(ece), level),
        "frequency": {
            "value": curve["frequency"].tolist(),
            "low": low.tolist(),
            "high": high.tolist(),
        },  # fmt: skip
        "bins": int(bins),
        "resamples": int(resamples),
        "seed": seed,
        "level": level,
    }
