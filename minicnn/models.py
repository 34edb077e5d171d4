"""The paper's network in its two readings (the paper contradicts itself; README: "two readings"),
paper_bn, the same family with BatchNorm and global average pooling, and paper_res, with
residual blocks; recipe() gives each preset's training defaults.

paper and paper13 take 64x64 images, use 3x3 "same" convolutions, 2x2 max pooling, dropout
0.2 before flatten, Dense(128) + ReLU, and a last Dense with one unit per class. All return
logits: the softmax (or sigmoid) is fused into the loss for training and applied for
prediction.

Each builder checks that its network takes image_size x image_size images before it returns:
a size too small for its pooling raises a ShapeError that names the layer and the
smallest size the network takes (checked_size).
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
    Residual,
)
from .layers.base import ShapeError, output_shapes
from .sequential import Sequential

LARGEST_CHECKED = 4096  # smallest_size looks no further


def smallest_size(layers, in_channels):
    """The smallest S for which layers take (in_channels, S, S) inputs (None up to LARGEST_CHECKED).

    Shapes only (each layer's output_shape): no weights are made or run.
    """
    for size in range(1, LARGEST_CHECKED + 1):
        try:
            output_shapes(layers, (in_channels, size, size))
        except ShapeError:
            continue
        return size
    return None


def checked_size(layers, in_channels, image_size, name):
    """The per-sample shape after layers for (in_channels, S, S) images, S = image_size.

    A layer that cannot take what it gets raises a ShapeError naming it (its kind, which of
    that kind it is, its index), what it would get, and the smallest size the layers take,
    e.g. "paper cannot take 8x8 images: its MaxPool2D #4 (layer #11) would get 1x1 maps
    (...); the smallest size it takes is 32x32". The error's .detail is the part after
    "images: ", its .smallest that size (None if none up to LARGEST_CHECKED).
    """
    try:
        return output_shapes(layers, (in_channels, image_size, image_size))[-1]
    except ShapeError as e:
        layer = layers[e.offset]
        nth = sum(type(other) is type(layer) for other in layers[: e.offset + 1])
        got = "x".join(map(str, e.input[1:])) + " maps" if len(e.input) == 3 else str(e.input)
        smallest = smallest_size(layers, in_channels)
        fits = (
            f"the smallest size it takes is {smallest}x{smallest}" if smallest else "no size fits"
        )
        detail = (
            f"its {type(layer).__name__} #{nth} (layer #{e.offset}) would get {got} ({e}); {fits}"
        )
        error = ShapeError(f"{name} cannot take {image_size}x{image_size} images: {detail}")
        error.detail, error.smallest = detail, smallest  # for a caller's own wording
        raise error from None


def _build(convs, pools, num_classes, in_channels, output, image_size, dropout, seed, name):
    rng = np.random.default_rng(seed)
    layers = []
    channels = in_channels
    for out_channels, pool in zip(convs, pools):
        layers += [Conv2D(channels, out_channels, 3, padding="same", rng=rng), ReLU()]
        if pool:
            layers.append(MaxPool2D(2))
        channels = out_channels
    flat = int(np.prod(checked_size(layers, in_channels, image_size, name)))  # C * H' * W'
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
    return _build(convs, pools, num_classes, in_channels, output, image_size, dropout, seed,
                  "paper")  # fmt: skip


def paper13(num_classes=200, in_channels=3, output="softmax", image_size=64, dropout=0.2, seed=0):
    """The introduction's and section 3.2's 13-layer reading, "8x8x64" before flatten.

    conv 32, 32, 64 each with maxpool(2), then conv 64, 64 without; 64x64 input ->
    (64, 8, 8) -> flatten 4096 -> 128 -> classes.
    """
    convs, pools = (32, 32, 64, 64, 64), (True, True, True, False, False)
    return _build(convs, pools, num_classes, in_channels, output, image_size, dropout, seed,
                  "paper13")  # fmt: skip


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
    checked_size(layers, in_channels, image_size, "paper_bn")  # any size its pools take
    return Sequential(layers, input_shape=(in_channels, image_size, image_size), output=output)


def _conv_bn(channels, width, rng, stride=1, relu=True):
    """Conv2D(3x3, bias=False) -> BatchNorm2D [-> ReLU]: BatchNorm's beta is the bias."""
    conv = Conv2D(channels, width, 3, stride=stride, padding=1, rng=rng, bias=False)
    return [conv, BatchNorm2D(width)] + ([ReLU()] if relu else [])


def basic_block(channels, width, stride=1, rng=None):
    """ResNet's basic block (He et al. 2016): two 3x3 convolutions and a shortcut, then ReLU.

    branch: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN; shortcut: the identity, or
    when the block halves the map or changes the width, Conv2D(1x1, stride) -> BN (a
    projection). The branch's last BatchNorm starts with gamma 0 (Goyal et al. 2017), so
    every block starts as its shortcut and the network as a shallow one that deepens as
    it trains. (channels, H, W) -> (width, H / stride, W / stride).
    """
    branch = _conv_bn(channels, width, rng, stride) + _conv_bn(width, width, rng, relu=False)
    branch[-1].gamma.data[:] = 0
    shortcut = None
    if stride != 1 or channels != width:
        project = Conv2D(channels, width, 1, stride=stride, rng=rng, bias=False)
        shortcut = [project, BatchNorm2D(width)]
    return Residual(branch, shortcut)


def paper_res(num_classes=200, in_channels=3, output="softmax", image_size=64, dropout=0.2, seed=0):
    """The paper's family with residual blocks: a ResNet of CIFAR's shape sized for 64x64.

    stem conv(32) | pool | stage 32 x1 | stage 64 x1 | stage 128 x2 | stage 256 x1 |
    global average pool | dropout | dense(classes)
    The stem is Conv2D(3x3, bias=False) -> BatchNorm2D -> ReLU -> MaxPool2D(2); each stage
    is basic_blocks, the first of stages 2-4 with stride 2 and a projection shortcut.
    Residual blocks in the ResNet v1 layout (ReLU after the sum, He et al. 2016): with
    BatchNorm after every convolution and 11 convolutions deep, it trains as well as the
    pre-activation layout, which matters from about a hundred layers on, and every 3x3
    convolution stays conv -> BN [-> ReLU], the step the fast engine fuses. Widths and
    halvings are those of paper_bn (and of ResNet-18 at half width), so every 3x3
    convolution after the stem costs 9.4 M (a stage's strided first one half that); the
    third stage, on 8x8 maps, gets the second block (ResNet-50 also deepens its third stage
    most). 64x64 input -> (256, 4, 4) -> GAP 256 -> classes: 85.7 M multiply-adds per image
    for 200 classes as summary() counts them (a budget of 100 M), 1.57 M parameters.
    """
    rng = np.random.default_rng(seed)
    layers = _conv_bn(in_channels, 32, rng) + [MaxPool2D(2)]
    channels = 32
    for s, (width, blocks) in enumerate(zip((32, 64, 128, 256), (1, 1, 2, 1))):
        for b in range(blocks):
            stride = 2 if s and not b else 1
            layers.append(basic_block(channels, width, stride, rng))
            channels = width
    layers += [
        GlobalAvgPool2D(),
        Dropout(dropout, rng=rng),
        Dense(channels, head_units(num_classes, output), rng=rng, init="glorot"),
    ]
    checked_size(layers, in_channels, image_size, "paper_res")  # 2x2 and larger
    return Sequential(layers, input_shape=(in_channels, image_size, image_size), output=output)


PHOTO_AUGMENT = {  # flips, small shifts and rotations, colour jitter (minicnn.data.Augment)
    "flip": 0.5,
    "rotate": 10,
    "shift": 0.1,
    "brightness": 0.2,
    "contrast": 0.2,
}


def recipe(preset):
    """The training defaults of a preset, as a plain dict (the examples print and apply it).

    Keys: optimizer ("Adam", "AdamW" or "SGD"), lr, momentum and nesterov (SGD's; Adam's
    are its betas), weight_decay, no_decay ("biases_and_norms": 1-D parameters left
    undecayed, see optim.biases_and_norms; None: decay all), batch_size, epochs, schedule
    (None, "cosine" or "linear", see minicnn.schedules), warmup_epochs, min_lr,
    label_smoothing, augment (None or the keyword arguments of minicnn.data.Augment),
    dropout.
    """
    paper_settings = {  # the paper's own (sections 3.1, 3.2): nothing modern added
        "optimizer": "Adam",
        "lr": 1e-4,
        "momentum": 0.0,
        "nesterov": False,
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
            "momentum": 0.0,
            "nesterov": False,
            "weight_decay": 5e-2,
            "no_decay": "biases_and_norms",
            # batch 128: steadier batch statistics than 32, and faster per image on CPU
            "batch_size": 128,
            "epochs": 30,  # the budget of the Tiny ImageNet runs (about 3 h on two cores)
            # one epoch of linear warm-up (Goyal et al. 2017), then cosine to 0 (SGDR,
            # Loshchilov & Hutter 2017): the usual pairing for a fixed epoch budget
            "schedule": "cosine",
            "warmup_epochs": 1,
            "min_lr": 0.0,
            # label smoothing 0.1 (Szegedy et al. 2016, Inception-v3; Mueller et al. 2019)
            "label_smoothing": 0.1,
            # flips, small shifts and rotations, colour jitter: the "future scope" of the
            # paper, and the augmentation of a published six-conv VGG-style BatchNorm
            # network at 44.6% on Tiny ImageNet
            "augment": dict(PHOTO_AUGMENT),
            "dropout": 0.2,
        }
    if preset == "paper_res":
        return {
            # SGD with momentum 0.9 at 0.1 for batch 128 and L2 decay: the recipe residual
            # networks were made with (He et al. 2016), with Nesterov's momentum and linear
            # decay as the published 52.3% ResNet on Tiny ImageNet. 5e-4 is the usual decay
            # for ResNets on small images, none on biases and BatchNorm (Bag of Tricks, He
            # et al. 2019). SGD tends to generalise better than adaptive steps (Wilson et
            # al. 2017): paper_bn, on AdamW, stopped rising on validation while it still
            # rose on training.
            "optimizer": "SGD",
            "lr": 0.1,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "no_decay": "biases_and_norms",
            "batch_size": 128,
            "epochs": 30,
            # one epoch of linear warm-up, then a straight line to 0 at the last step:
            # for a fixed budget of epochs, linear decay to zero is the most robust
            # schedule (Li, Yumer and Ramanan, ICLR 2020, budgeted training)
            "schedule": "linear",
            "warmup_epochs": 1,
            "min_lr": 0.0,
            "label_smoothing": 0.1,
            # paper_bn's augmentation: mixup and CutMix pay off only over hundreds of epochs
            "augment": dict(PHOTO_AUGMENT),
            "dropout": 0.2,
        }
    raise ValueError(
        f'preset must be "paper", "paper13", "paper_bn" or "paper_res", got {preset!r}'
    )
