"""Ensemble: several trained models (one network trained with several seeds, say) as one,
whose class probabilities are the mean of theirs.

Each member preprocesses the images with its own normalisation statistics, so members
trained on splits carved with different seeds combine as they are; they must agree on what
they take and tell apart: input shape (channels, height, width), number of classes and class
names. Test-time augmentation applies to every member: with tta "flip", the ensemble's
probability is the mean over members and views.
"""

import numpy as np

from ..metrics import top_k_accuracy
from .evaluate import evaluate, num_classes_of


class EnsembleError(ValueError):
    """Members that do not agree on their input or their classes (the message names them)."""


class Ensemble:
    """The mean of several models' class probabilities.

    Inputs of the constructor:
    - models: two or more Sequential (or one: an ensemble of one is that model)
    - names: a name per model for messages (e.g. their files); default "model 1", ...

    Attributes: models, names, input_shape (C, H, W), class_names (or None), num_classes K,
    threshold (None; set it to decide two classes at another point than 0.5).
    """

    def __init__(self, models, names=None):
        self.models = list(models)
        if not self.models:
            raise EnsembleError("an ensemble needs at least one model")
        self.names = list(names) if names is not None else [
            f"model {k}" for k in range(1, len(self.models) + 1)
        ]  # fmt: skip
        if len(self.names) != len(self.models):
            raise EnsembleError(f"{len(self.models)} models but {len(self.names)} names")
        first, name = self.models[0], self.names[0]
        for model, other in zip(self.models[1:], self.names[1:]):
            for what, a, b in (
                ("input (channels, height, width)", first.input_shape, model.input_shape),
                ("number of classes", num_classes_of(first), num_classes_of(model)),
                ("class names", _names(first), _names(model)),
            ):
                if a is not None and b is not None and _plain(a) != _plain(b):
                    raise EnsembleError(
                        f"the models of an ensemble must agree on their {what}: {name} has "
                        f"{_shown(a)}, {other} {_shown(b)}"
                    )
        self.input_shape = tuple(first.input_shape)
        self.num_classes = num_classes_of(first)
        self.class_names = next((_names(m) for m in self.models if _names(m)), None)
        self.threshold = None

    def __len__(self):
        return len(self.models)

    def predict_proba(self, images, batch_size=256, tta=None):
        """Class probabilities (N, K) of uint8 images (N, C, H, W): the mean of the members'
        (each preprocesses the images with its own statistics; tta as Sequential's)."""
        probs = [m.predict_proba(images, batch_size, tta) for m in self.models]  # M x (N, K)
        return np.mean(probs, axis=0, dtype=np.float64).astype(probs[0].dtype)

    def predict(self, images, batch_size=256, tta=None):
        """Most probable class index (N,); for two classes with a threshold set, class 1
        where P(class 1) >= threshold."""
        return decide(self.predict_proba(images, batch_size, tta), self.threshold)

    def evaluate(self, split, batch_size=256, tta=None):
        """minicnn.training.evaluate for the ensemble: each member over the split, their
        probabilities averaged.

        Returns the dict evaluate returns (loss None): accuracy (two classes: at the threshold
        when set), top5 (K > 5), probs (N, K), predictions (N,), labels (N,); and
        members: the members' probabilities, (M, N, K).
        """
        members = np.stack([evaluate(m, split, batch_size=batch_size, tta=tta)["probs"]
                            for m in self.models])  # fmt: skip
        probs = members.mean(axis=0, dtype=np.float64).astype(members.dtype)  # (N, K)
        labels = split.labels
        preds = decide(probs, self.threshold)
        result = {
            "loss": None,
            "accuracy": float(np.mean(preds == labels)) if len(labels) else float("nan"),
        }
        if self.num_classes > 5:
            result["top5"] = top_k_accuracy(labels, probs, 5)
        result.update(probs=probs, predictions=preds, labels=labels, members=members)
        return result


def decide(probs, threshold=None):
    """Class indices (N,) from probabilities (N, K): argmax, or for two classes with a
    threshold, class 1 where P(class 1) >= threshold (as Sequential.predict)."""
    if threshold is not None and probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).astype(np.int64)
    return probs.argmax(axis=1)


def _names(model):
    names = getattr(model, "class_names", None)
    return None if names is None else [str(n) for n in names]


def _plain(value):
    """Shapes and name lists as tuples of ints and strings, numbers as they are: comparable."""
    return tuple(value) if isinstance(value, (tuple, list)) else value


def _shown(value):
    return str(tuple(int(v) for v in value)) if isinstance(value, tuple) else str(value)
