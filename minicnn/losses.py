"""Losses that take logits: the softmax or sigmoid is fused in for numerical stability."""

import numpy as np

from .layers.activations import sigmoid, softmax


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer class targets.

    Shape: logits (N, K), targets (N,) ints in [0, K). Returns a float.
    loss_i = logsumexp(logits_i) - logits_i[t_i], computed after subtracting the row max,
    so logits in the thousands are fine. backward() -> (softmax - onehot) / N, (N, K).
    class_weights (K,), optional: weighted mean sum(w_t * loss) / sum(w_t), as in PyTorch,
    for imbalanced data.
    """

    def __init__(self, class_weights=None):
        self.class_weights = None if class_weights is None else np.asarray(class_weights)

    def forward(self, logits, targets):
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy expects logits (N, K), got {logits.shape}")
        N, K = logits.shape
        targets = np.asarray(targets)
        if targets.shape != (N,):
            raise ValueError(f"SoftmaxCrossEntropy expects targets ({N},), got {targets.shape}")
        if not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(f"targets must be integer class indices, got {targets.dtype}")
        if N and (targets.min() < 0 or targets.max() >= K):
            bad = targets[(targets < 0) | (targets >= K)][0]
            raise ValueError(f"label {bad} is outside the {K} classes [0, {K - 1}]")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1))
        losses = log_z - shifted[np.arange(N), targets]  # (N,)
        if self.class_weights is None:
            w = np.full(N, 1.0 / N, dtype=logits.dtype)
        else:
            w = self.class_weights[targets].astype(logits.dtype)
            w = w / w.sum()
        self._probs = softmax(logits, axis=1)
        self._targets = targets
        self._w = w
        return float((w * losses).sum())

    def backward(self):
        N = self._probs.shape[0]
        dlogits = self._probs.copy()
        dlogits[np.arange(N), self._targets] -= 1
        return dlogits * self._w[:, None]


class BinaryCrossEntropy:
    """Mean binary cross-entropy of sigmoid(logits) against 0/1 targets of the same shape.

    Shape: logits (N, K) or (N,); targets the same shape ((N,) also accepted for (N, 1)).
    loss = max(x, 0) - x*t + log(1 + exp(-|x|)), stable for any x; mean over all elements.
    pos_weight p (optional) scales the positive term, as in torch's BCEWithLogitsLoss:
    loss = -[p t log s + (1 - t) log(1 - s)]. backward() -> (s*(p t + 1 - t) - p t) / size.
    """

    def __init__(self, pos_weight=None):
        self.pos_weight = pos_weight

    def forward(self, logits, targets):
        targets = np.asarray(targets)
        if targets.shape != logits.shape and logits.shape[1:] == (1,):  # (N,) for (N, 1)
            targets = targets.reshape(logits.shape)
        if targets.shape != logits.shape:
            raise ValueError(
                f"BinaryCrossEntropy expects targets of the logits' shape {logits.shape}, "
                f"got {targets.shape}"
            )
        if targets.size and (targets.min() < 0 or targets.max() > 1):
            raise ValueError("BinaryCrossEntropy targets must lie in [0, 1]")
        x = logits
        t = targets.astype(x.dtype)
        p = 1.0 if self.pos_weight is None else self.pos_weight
        softplus_neg = np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)  # -log sigmoid(x)
        losses = (1 - t) * x + (1 + (p - 1) * t) * softplus_neg
        self._s = sigmoid(x)
        self._t = t
        self._p = p
        return float(losses.mean())

    def backward(self):
        s, t, p = self._s, self._t, self._p
        return ((s * (p * t + 1 - t) - p * t) / s.size).astype(s.dtype, copy=False)
