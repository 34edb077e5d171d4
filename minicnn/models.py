"""The paper's network in its two readings (the paper contradicts itself; README: "two readings"),
and paper_bn, the same family with BatchNorm and global average pooling; recipe() gives each
preset's training defaults.

paper and paper13 take 64x64 images, use 3x3 "same" convolutions, 2x2 max pooling, dropout
0.2 before flatten, Dense(128) + ReLU, and a last Dense with one unit per class. All return
logits: the softmax (or sigmoid) is fused into the loss for training and applied for
prediction.
"""

import numpy as np

from .heads import head_units
from .layers import (
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
)
from .sequential import Sequential


def _build(convs, pools, num_classes, in_channels, output, image_size, dropout, seed):
    rng = np.random.default_rng(seed)
    layers = []
    channels, size = in_channels, image_size
    for out_channels, pool in zip(convs, pools):
        layers += [Conv2D(channels, out_channels, 3, padding="same", rng=rng), ReLU()]
        if pool:
            layers.append(MaxPool2D(2))
            size //= 2
        channels = out_channels
    flat = channels * size * size
    layers += [
        Dropout(dropout, rng=rng),
        Flatten(),
        Dense(flat, 128, rng=rng),
        ReLU(),
        Dense(128, head_units(num_classes, output), rng=rng, init="glorot"),
    ]
    return Sequential(layers, input_shape=(in_channels, image_size, image_size), output=output)


def paper(num_classes=200, in_channels=3, output="softmax", image_size=64, dropout=0.2, seed=0):
    """Section 3.1's 14-layer reading: five conv(3x3) + ReLU + maxpool(2) blocks.

    Filters 16, 32, 64, 16, 64; 64x64 input -> (64, 2, 2) -> flatten 256 -> 128 -> classes.
    output="sigmoid" with num_classes=2 gives a single logit (binary X-ray screening).
    """
    convs, pools = (16, 32, 64, 16, 64), (True,) * 5
    return _build(convs, pools, num_classes, in_channels, output, image_size, dropout, seed)


def paper13(num_classes=200, in_channels=3, output="softmax", image_size=64, dropout=0.2, seed=0):
    """The introduction's and section 3.2's 13-layer reading, "8x8x64" before flatten.

    conv 32, 32, 64 each with maxpool(2), then conv 64, 64 without; 64x64 input ->
    (64, 8, 8) -> flatten 4096 -> 128 -> classes.
    """
    convs, pools = (32, 32, 64, 64, 64), (True, True, True, False, False)
    return _build(convs, pools, num_classes, in_channels, output, image_size, dropout, seed)


def paper_bn(num_classes=200, in_channels=3, output="softmax", image_size=64, dropout=0.2, seed=0):
    """The paper's family with BatchNorm: eight 3x3 convolutions, four 2x2 max pools, GAP.

    conv(32) | pool | conv(32) | pool | conv(64) conv(64) | pool | conv(128) conv(128) | pool |
    conv(256) conv(256) | global average pool | dropout | dense(classes)
    Each conv is Conv2D(bias=False) -> BatchNorm2D -> ReLU (BatchNorm's beta is the bias).
    The shape of VGG-11 (one conv in the first two stages, two in the last three) at a quarter
    of its width. 64x64 input -> (256, 4, 4) -> GAP 256 -> classes, for 200 classes: 55.7 M
    multiply-adds per image (55.5 M in the convolutions and the head, 0.2 M in BatchNorm) and
    1.22 M parameters. The last three stages cost 14.2 M each: halving the map and doubling the
    channels keep H * W * C_in * C_out fixed.
    """
    rng = np.random.default_rng(seed)
    stages = ((32,), (32,), (64, 64), (128, 128), (256, 256))
    layers, channels = [], in_channels
    for s, widths in enumerate(stages):
        if s:
            layers.append(MaxPool2D(2))
        for width in widths:
            layers += [
                Conv2D(channels, width, 3, padding="same", rng=rng, bias=False),
                BatchNorm2D(width),
                ReLU(),
            ]
            channels = width
    layers += [
        GlobalAvgPool2D(),
        Dropout(dropout, rng=rng),
        Dense(channels, head_units(num_classes, output), rng=rng, init="glorot"),
    ]
    return Sequential(layers, input_shape=(in_channels, image_size, image_size), output=output)


def recipe(preset):
    """The training defaults of a preset, as a plain dict (the examples print and apply it).

    Keys: optimizer ("Adam" or "AdamW"), lr, weight_decay, no_decay ("biases_and_norms": 1-D
    parameters left undecayed, see optim.biases_and_norms; None: decay all), batch_size,
    epochs, schedule (None or "cosine"), warmup_epochs, min_lr, label_smoothing, augment
    (None or the keyword arguments of minicnn.data.Augment), dropout.
    """
    paper_settings = {  # the paper's own (sections 3.1, 3.2): nothing modern added
        "optimizer": "Adam",
        "lr": 1e-4,
        "weight_decay": 0.0,
        "no_decay": None,
        "batch_size": 32,
        "epochs": 20,
        "schedule": None,
        "warmup_epochs": 0,
        "min_lr": 0.0,
        "label_smoothing": 0.0,
        "augment": None,
        "dropout": 0.2,
    }
    if preset in ("paper", "paper13"):
        return dict(paper_settings)
    if preset == "paper_bn":
        return {
            # AdamW, decoupled decay (Loshchilov & Hutter 2019); 2e-3 at batch 128 is in the
            # range BatchNorm allows (Ioffe & Szegedy 2015 train 5-30x faster with it); 0.05
            # is the decay of DeiT / ConvNeXt recipes, none on biases and BatchNorm.
            "optimizer": "AdamW",
            "lr": 2e-3,
            "weight_decay": 5e-2,
            "no_decay": "biases_and_norms",
            # batch 128: steadier batch statistics than 32, and faster per image on CPU
            "batch_size": 128,
            "epochs": 30,  # the limit
            # one epoch of linear warm-up (Goyal et al. 2017), then cosine to 0 (SGDR,
            # Loshchilov & Hutter 2017): the usual pairing for a fixed epoch budget
            "schedule": "cosine",
            "warmup_epochs": 1,
            "min_lr": 0.0,
            # label smoothing 0.1 (Szegedy et al. 2016, Inception-v3; Mueller et al. 2019)
            "label_smoothing": 0.1,
            # flips, small shifts and rotations, colour jitter: the "future scope" of the
            # paper and the augmentation of the 44.6% six-conv network the issue cites
            "augment": {
                "flip": 0.5,
                "rotate": 10,
                "shift": 0.1,
                "brightness": 0.2,
                "contrast": 0.2,
            },
            "dropout": 0.2,
        }
    raise ValueError(f'preset must be "paper", "paper13" or "paper_bn", got {preset!r}')
