"""Losses that take logits: the softmax or sigmoid is fused in for numerical stability."""

import numpy as np

from .layers.activations import sigmoid


class SoftmaxCrossEntropy:
    """Mean cross-entropy of softmax(logits) against integer class targets.

    Shape: logits (N, K), targets (N,) ints in [0, K). Returns a float.
    log p = logits - logsumexp(logits), computed after subtracting the row max, so logits in
    the thousands are fine; loss_i = -log p_i[t_i].
    label_smoothing s (PyTorch's definition): the target is (1 - s) * one_hot + s / K, so
    loss_i = (1 - s) * (-log p_i[t_i]) + s / K * sum_k (-log p_i[k]).
    class_weights w (K,), optional, as in PyTorch: the weighted mean
        loss = sum_i [(1 - s) w[t_i] (-log p_i[t_i]) + s / K sum_k w[k] (-log p_i[k])]
               / sum_i w[t_i]
    (torch.nn.functional.cross_entropy: the smoothing term weighs each class k by w[k] and
    is divided by the same sum of target weights as the plain term).
    backward() -> dlogits (N, K) = (sum_k q_ik) * p_i - q_i, with q_i the weighted target
    row divided by sum_i w[t_i]; without weights, (p - target) / N.
    """

    def __init__(self, class_weights=None, label_smoothing=0.0):
        self.class_weights = None if class_weights is None else np.asarray(class_weights)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

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
        if self.class_weights is not None and self.class_weights.shape != (K,):
            raise ValueError(
                f"class_weights has shape {self.class_weights.shape}, the logits have {K} classes"
            )
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, K)
        w = np.ones(K) if self.class_weights is None else self.class_weights  # (K,)
        w = w.astype(logits.dtype)
        total = w[targets].sum()  # sum_i w[t_i]: N without weights
        s = self.label_smoothing
        # q (N, K): each row's weighted target, divided by the total (loss = -sum q * log p)
        q = np.tile((s / K) * w / total, (N, 1))
        q[np.arange(N), targets] += (1 - s) * w[targets] / total
        self._probs = np.exp(log_p)
        self._q = q
        return float(-(q * log_p).sum())

    def backward(self):
        return self._q.sum(axis=1, keepdims=True) * self._probs - self._q


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
