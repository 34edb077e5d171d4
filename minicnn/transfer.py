"""Transfer learning: a trained model's layers under a new head, for new classes.

    model = minicnn.transfer("examples/models/paper13-aug-tiny-imagenet.npz", 2,
                             output="sigmoid")   # backbone frozen, fresh one-unit head
    ... train the head ...; model.unfreeze(); ... train everything at a lower rate ...

The new model copies the source's layers (the source is left as it was): every one but the
last Dense layer, the head, which is replaced in its place by a fresh Dense for the new
classes. With freeze=True the copied layers are frozen (Sequential.freeze): the optimizers
leave them alone and backward skips their weight gradients.
"""

import math

import numpy as np

from .heads import head_units
from .io import load
from .layers import BatchNorm2D, Conv2D, Dense, Dropout
from .layers.nested import children
from .layers.norm import batchnorms
from .schedules import Schedule
from .sequential import Sequential


def copy_layer(layer, rng=None):
    """A new layer of the same type and configuration, with copies of its parameters and
    buffers (BatchNorm's running statistics); a Dropout gets a generator seeded from rng.
    A block (Residual) gets copies of the layers inside it."""
    seq = rng if isinstance(rng, np.random.SeedSequence) else np.random.SeedSequence(rng)
    inner = {name: [copy_layer(lay, s) for lay, s in zip(lays, seq.spawn(len(lays)))]
             for name, lays in children(layer)}  # fmt: skip
    new = type(layer)(**layer.config(), **inner)
    for old_p, new_p in zip(layer.parameters(), new.parameters()):
        new_p.data = old_p.data.copy()
        new_p.grad = np.zeros_like(new_p.data)
    for name in getattr(layer, "BUFFERS", ()):
        setattr(new, name, getattr(layer, name).copy())
    if isinstance(layer, Dropout):
        new.rng = np.random.default_rng(rng)
    return new


def fold_to_gray(conv, mean=None, std=None):
    """Fold a C-channel first convolution and its input normalisation into one channel.

    conv: Conv2D with W (F, C, k, k) and b (F,) or None; mean, std: the source's
    normalisation (C,) of x_c = (u - mean_c) / std_c, u = pixel / 255 (None: none).
    Returns W1 (F, 1, k, k), b1 (F,) (float64) and mean1, std1 (float32 (1,), or None):
    the gray model normalises as x = (u - mean1) / std1, mean1 and std1 the averages of
    the source's, and
        W1[f] = std1 * sum_c W[f, c] / std_c
        b1[f] = b[f] + sum_c (mean1 - mean_c) / std_c * sum_k W[f, c, k]
    so that W1 * x + b1 = W * x_RGB + b for a gray image u and its RGB replica, wherever
    the kernel lies inside the image. The zero padding differs: it means u = mean_c per
    channel in the source, u = mean1 after the fold, so the outputs whose window reaches
    the padded border are not the same (b1 also carries the padded taps' share).
    """
    W = conv.W.data.astype(np.float64)
    b = np.zeros(len(W)) if conv.b is None else conv.b.data.astype(np.float64)
    if mean is None:  # x = u in both: the channels just add up
        return W.sum(axis=1, keepdims=True), b, None, None
    mean_c, std_c = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    mean1, std1 = (float(np.float32(v.mean())) for v in (mean_c, std_c))  # as stored
    W1 = std1 * (W / std_c[None, :, None, None]).sum(axis=1, keepdims=True)  # (F, 1, k, k)
    taps = W.sum(axis=(2, 3))  # (F, C): sum_k W[f, c, k]
    b1 = b + (taps * ((mean1 - mean_c) / std_c)[None, :]).sum(axis=1)
    return W1, b1, np.array([mean1], np.float32), np.array([std1], np.float32)


def _gray_first_layer(layers, mean, std):
    """layers with the first Conv2D folded to one channel (in place); the new mean, std.

    A bias-free convolution followed by BatchNorm2D stays bias-free: its b1 moves into
    the BatchNorm's running mean, which it would only shift (a batch's mean absorbs it).
    """
    conv = layers[0]
    W1, b1, mean, std = fold_to_gray(conv, mean, std)
    bn = layers[1] if len(layers) > 1 and isinstance(layers[1], BatchNorm2D) else None
    bias_free = conv.b is None and bn is not None
    folded = Conv2D(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=not bias_free)  # fmt: skip
    dtype = conv.W.data.dtype
    folded.W.data = W1.astype(dtype)
    if bias_free:  # BatchNorm(y + b1) = BatchNorm with running_mean - b1, applied to y
        bn.running_mean = (bn.running_mean - b1).astype(bn.running_mean.dtype)
    else:
        folded.b.data = b1.astype(dtype)
    for p in folded.parameters():
        p.grad = np.zeros_like(p.data)
    layers[0] = folded
    return mean, std


def transfer(source, num_classes, output="softmax", in_channels=None, freeze=True, seed=0):
    """A new Sequential: the source's layers with a fresh head for num_classes classes.

    source: a Sequential, or the path of a model file (minicnn.load).
    Keeps every layer of the source except its last Dense layer, which is replaced, in its
    place, by Dense(in_features, units) with units = head_units(num_classes, output) (one
    unit for output="sigmoid" with two classes), Glorot-initialised from `seed`; Dropout
    layers get generators from `seed` too. The normalisation (mean, std) is carried over:
    images are to be preprocessed as the source's were. class_names is None (set yours).
    in_channels: None keeps the source's channels; gray images then go in as RGB replicas
    (`load(..., channels=3)`, exact). in_channels=1 instead folds the first convolution
    and the normalisation into one channel (fold_to_gray): smaller and faster, and a gray
    image gives the source's response to its RGB replica exactly wherever the kernel does
    not touch the zero padding. The padding is zero in another space after the fold, so
    the border outputs differ a little.
    freeze=True freezes every kept layer (model.freeze()); the head is always trainable.
    Shape: input (C or 1, H, W) as the source's; output (units,).
    """
    if not isinstance(source, Sequential):
        source = load(source)
    if source.input_shape is None:
        raise ValueError("transfer needs a source model with an input_shape (C, H, W)")
    dense = [i for i, layer in enumerate(source.layers) if isinstance(layer, Dense)]
    if not dense:
        raise ValueError(f"the source model has no Dense layer to replace: {source!r}")
    head = dense[-1]
    C, H, W = source.input_shape
    seeds = np.random.SeedSequence(seed).spawn(len(source.layers))
    layers = [copy_layer(layer, seeds[i]) for i, layer in enumerate(source.layers)]
    layers[head] = Dense(
        source.layers[head].in_features,
        head_units(num_classes, output),
        rng=np.random.default_rng(seeds[head]),
        init="glorot",
    )
    mean, std = source.mean, source.std
    if in_channels is not None and in_channels != C:
        if in_channels != 1 or not isinstance(layers[0], Conv2D):
            raise ValueError(
                f"in_channels={in_channels}: a {C}-channel source keeps {C} channels "
                "(in_channels=None) or folds its first Conv2D into one (in_channels=1)"
            )
        mean, std = _gray_first_layer(layers, mean, std)
        C = 1
    model = Sequential(layers, input_shape=(C, H, W), output=output, fast=source.fast)
    model.mean, model.std = mean, std
    if freeze:
        model.freeze(upto=head)
    return model


def fresh_state(optimizer):
    """Reset an optimizer's state to what a new one starts from (Adam: t = 0, m = v = 0)."""
    state = optimizer.state_dict()
    zeros = {
        k: [np.zeros_like(a) for a in v] if isinstance(v, list) else type(v)(0)
        for k, v in state.items()
    }
    optimizer.load_state_dict(zeros)


class FineTune(Schedule):
    """Fine-tuning in two stages, as a learning-rate schedule that also (un)freezes the model.

    Stage 1, steps k < head_steps: the head alone trains at head_lr (every layer before
    model.head_index() frozen). Stage 2, from step head_steps on: every layer from index
    keep_frozen on trains (0: all), from a fresh optimizer state (a new optimizer, in
    effect: Adam's moments start again at zero), at the optimizer's own lr, or at the rates
    of `then` (a schedule made on the same optimizer beforehand, counted from stage 2's
    first step: then.rate(k - head_steps)). head_steps=math.inf: the head alone throughout.
    keep_statistics=True: every BatchNorm keeps normalising with the source's running
    statistics in stage 2 too (and leaves them as they are), while its gamma and beta train
    (BatchNorm2D.freeze_statistics; docs/batchnorm.md); False: an unfrozen BatchNorm uses
    its batches' statistics.

        optimizer = Adam(model.parameters(), lr=1e-4)          # stage 2's rate
        fit(model, ..., schedule=FineTune(optimizer, model, 3 * steps_per_epoch, 1e-3))

    The state (k) goes into fit's checkpoint, and loading it restores the stage's freezing,
    so a resumed fine-tuning continues exactly.
    """

    def __init__(
        self, optimizer, model, head_steps, head_lr, then=None, keep_frozen=0,
        keep_statistics=False,
    ):  # fmt: skip
        if head_steps < 0 or keep_frozen < 0:
            raise ValueError(f"FineTune needs head_steps, keep_frozen >= 0, got {head_steps}, "
                             f"{keep_frozen}")  # fmt: skip
        self.model, self.head_steps, self.head_lr = model, head_steps, float(head_lr)
        self.then, self.keep_frozen = then, int(keep_frozen)
        for bn in batchnorms(model):
            bn.freeze_statistics(keep_statistics)
        self.keep_statistics = bool(keep_statistics)
        super().__init__(optimizer)  # base_lr: the optimizer's lr, stage 2's rate
        self._freeze()

    def rate(self, k):
        if k < self.head_steps:
            return self.head_lr
        return self.base_lr if self.then is None else self.then.rate(k - self.head_steps)

    def step(self):
        super().step()
        if self.k == self.head_steps:  # stage 2 begins: a new optimizer, in effect
            fresh_state(self.optimizer)
            self._freeze()

    def _freeze(self):
        """The freezing of the current stage."""
        model = self.model
        if self.k < self.head_steps:
            model.unfreeze(len(model)).freeze()  # all but the head
        else:
            model.unfreeze(len(model)).freeze(self.keep_frozen)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._freeze()

    def stages(self, steps_per_epoch):
        """The plan in words, one line per stage, in epochs of steps_per_epoch steps."""
        model, head = self.model, self.model.head_index()
        e1 = self.head_steps / steps_per_epoch
        lines = []
        if self.head_steps:
            when = "every epoch" if math.isinf(e1) else "epoch 1" if e1 == 1 else f"epochs 1-{e1:g}"
            lines.append(
                f"{when}: the new head alone ({model[head]!r}; layers 0-{head - 1} "
                f"frozen) at lr {self.head_lr:g}"
            )
        if math.isinf(e1):
            return lines
        rest = "every layer" if not self.keep_frozen else f"layers {self.keep_frozen} on"
        if self.then is None:
            rate = f"lr {self.base_lr:g}"
        else:
            rate = f"the rates of {type(self.then).__name__} from lr {self.then.base_lr:g}"
        lines.append(f"from epoch {e1 + 1:g}: {rest} at {rate}, from a fresh optimizer state")
        if self.keep_statistics:
            lines[-1] += ", the BatchNorms on the source's running statistics"
        return lines
