"""metadata_props: what a deployment needs beside the graph, written by export, read by load.

Each value is JSON text (json.loads gives a str, a number, a list or null):

    minicnn.version        the minicnn that wrote the file
    minicnn.input_shape    [C, H, W]
    minicnn.input          what the input is, in words
    minicnn.normalize      "graph" (the graph normalises uint8 images) or "metadata"
    minicnn.mean, .std     per channel, on the pixels / 255 scale (null: none)
    minicnn.class_names    one name per class (null: none)
    minicnn.output         "softmax" or "sigmoid"
    two classes only:
    minicnn.positive_class the name of class 1
    minicnn.threshold      class 1 when P(class 1) >= threshold
    minicnn.threshold_chosen   true: chosen on validation; false: the default 0.5
"""

import json

import numpy as np

from ..heads import num_classes
from ..version import __version__


def metadata(model, record, normalize):
    """{key: JSON text} for a model and its record (minicnn.io.model_record)."""
    C, H, W = record["input_shape"]
    if normalize == "graph":
        what = f"uint8 images (N, {C}, {H}, {W}), pixels 0..255; the graph normalises them"
    else:
        what = f"float32 (N, {C}, {H}, {W}): (pixels / 255 - mean) / std, per channel"
    meta = {
        "minicnn.version": __version__,
        "minicnn.input_shape": [C, H, W],
        "minicnn.input": what,
        "minicnn.normalize": normalize,
        "minicnn.mean": record["mean"],
        "minicnn.std": record["std"],
        "minicnn.class_names": record["class_names"],
        "minicnn.output": record["output"],
    }
    if num_classes(model.output_shape(model.input_shape)[-1], model.output) == 2:
        names = record["class_names"] or ["class 0", "class 1"]
        meta["minicnn.positive_class"] = names[1]
        meta["minicnn.threshold"] = record.get("threshold", 0.5)
        meta["minicnn.threshold_chosen"] = "threshold" in record
    return {k: json.dumps(v) for k, v in meta.items()}


def _is_number(v):
    return isinstance(v, int | float) and not isinstance(v, bool)


def read_metadata(proto, model, mean=None, std=None, scaled=False):
    """Set model.class_names, mean, std and threshold from proto's metadata_props.

    mean, std: those the graph itself applies (None: none); scaled: the graph divides by
    255 itself. Each value is taken only when it fits the model (the file may be anyone's):
    class names one per class, mean and std one per channel, a threshold in [0, 1].
    """
    props = {p.key: p.value for p in proto.metadata_props}

    def value(key):
        try:
            return json.loads(props[key]) if key in props else None
        except json.JSONDecodeError:
            return None

    C = model.input_shape[0]
    K = num_classes(model.output_shape(model.input_shape)[-1], model.output)
    names = value("minicnn.class_names")
    ok = isinstance(names, list) and len(names) == K and all(isinstance(n, str) for n in names)
    model.class_names = names if ok else None
    if mean is None and not scaled:  # normalize="metadata": the caller normalises
        mean, std = value("minicnn.mean"), value("minicnn.std")
        fits = [
            isinstance(v, list) and len(v) == C and all(map(_is_number, v)) for v in (mean, std)
        ]
        mean, std = (mean, std) if all(fits) else (None, None)
    model.mean = None if mean is None else np.asarray(mean, np.float32).reshape(-1)
    model.std = None if std is None else np.asarray(std, np.float32).reshape(-1)
    t = value("minicnn.threshold")
    chosen = value("minicnn.threshold_chosen") is True  # else the default rule, 0.5
    model.threshold = float(t) if chosen and _is_number(t) and 0 <= t <= 1 else None
