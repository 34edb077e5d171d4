"""The paper's network in its two readings (the paper contradicts itself; README: "two readings").

Both take 64x64 images, use 3x3 "same" convolutions, 2x2 max pooling, dropout 0.2 before
flatten, Dense(128) + ReLU, and a last Dense with one unit per class. They return logits:
the softmax (or sigmoid) is fused into the loss for training and applied for prediction.
"""

import numpy as np

from .heads import head_units
from .layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU
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
