"""Sequential: a list of layers; forward is a loop, backward the same loop reversed."""

import numpy as np

from . import fast as fast_engine
from .data.augment import views
from .heads import logits_of, probabilities
from .layers.base import ShapeError, output_shapes
from .layers.nested import astype, leaves, nested_cost, parameters, total


class Summary(str):
    """The text of Sequential.summary(), carrying .rows and .totals (see there)."""


def _millions(n):
    return f"{n / 1e6:,.2f} M" if n else "0"


def _kib(nbytes):
    return f"{nbytes / 1024:,.1f} KiB"


class Sequential:
    """A model that applies its layers one after the other.

    model = Sequential([Conv2D(3, 16, 3, padding="same"), ReLU(), MaxPool2D(2), ...],
                       input_shape=(3, 64, 64))

    input_shape (C, H, W), optional: checks at build time that each layer accepts what the
    previous one gives, so a mismatch is reported with the layer's name, not from deep
    inside a matrix multiply.

    fast=True (the default) runs the model on the fast engine (minicnn/fast/): the same
    numbers, computed faster, e.g. each Conv2D -> ReLU -> MaxPool2D as one fused step.
    fast=False, or `model.fast = False` at any time, runs only the layers' own forward and
    backward: the reference engine, the code a learner reads. `fuse` is an older name of
    `fast`, kept as an alias.

    Attributes used for prediction (set by the training code and stored by minicnn.save):
    output ("softmax" or "sigmoid"), class_names, mean and std (per channel, applied
    to uint8 images as (x / 255 - mean) / std), threshold (two classes: class 1 when
    P(class 1) >= threshold, chosen on validation; None: 0.5).
    """

    def __init__(self, layers, input_shape=None, output="softmax", fast=True, fuse=None):
        self.layers = list(layers)
        self.fast = fast if fuse is None else fuse
        self._steps = None
        self._fast_plan = (None, None)  # (the layers it was made for, the fast engine's steps)
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.output = output
        self.class_names = None
        self.mean = None
        self.std = None
        self.threshold = None
        if self.input_shape is not None:
            self.output_shape(self.input_shape)

    @property
    def fuse(self):
        """The older name of `fast`."""
        return self.fast

    @fuse.setter
    def fuse(self, value):
        self.fast = value

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n])"

    def parameters(self):
        """Every Parameter, those of the layers inside blocks (Residual) included, once each."""
        return parameters(self.layers)

    def head_index(self):
        """Index of the head: the last layer with parameters (the last Dense, usually).

        Indices here, in freeze, unfreeze and frozen, count the model's own layers: a
        Residual block is one of them, and freezing it freezes every layer inside it.
        """
        with_params = [i for i, layer in enumerate(self.layers) if layer.parameters()]
        if not with_params:
            raise ValueError("the model has no layer with parameters, hence no head")
        return with_params[-1]

    def freeze(self, upto=None):
        """Freeze the parameters of the layers before index `upto` (None: all but the head).

        A frozen parameter (Parameter.trainable False) is left alone by the optimizers, and
        backward skips its gradient; the layers below the lowest trainable one get no
        backward at all. A frozen BatchNorm also keeps its running statistics, and uses them
        in training too (as Keras does), so that the frozen layers stay one fixed function.
        Returns the model.
        """
        return self._set_trainable(False, upto)

    def unfreeze(self, upto=None):
        """Make the layers before index `upto` trainable again (None: all but the head)."""
        return self._set_trainable(True, upto)

    def _set_trainable(self, trainable, upto):
        upto = self.head_index() if upto is None else upto
        for p in parameters(self.layers[:upto]):
            p.trainable = trainable
        return self

    def frozen(self):
        """Indices of the layers whose parameters are all frozen (layers without any: never)."""
        return [
            i
            for i, layer in enumerate(self.layers)
            if layer.parameters() and not any(p.trainable for p in layer.parameters())
        ]

    def astype(self, dtype):
        astype(self.layers, dtype)
        return self

    def _where(self, i):
        here = f"layer #{i} {self.layers[i]!r}"
        if i == 0:
            return f"{here} (the model's input)"
        return f"{here} (after #{i - 1} {self.layers[i - 1]!r})"

    def output_shape(self, input_shape):
        """Per-sample shape after every layer: (C, H, W) -> e.g. (num_classes,)."""
        return self._shapes(input_shape)[-1]

    def _shapes(self, input_shape):
        try:
            return output_shapes(self.layers, input_shape)
        except ShapeError as e:
            raise ShapeError(f"{self._where(e.offset)} got input {e.input}: {e}") from None

    def forward(self, x, training=False):
        """x (N, *input_shape) -> logits (N, *output_shape)."""
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"the model computes on float arrays, got {x.dtype}: convert images with "
                "model.preprocess(uint8 images) or x.astype(np.float32)"
            )
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise ShapeError(
                f"the model expects a batch (N, {', '.join(map(str, self.input_shape))}), "
                f"got {x.shape}"
            )
        self._steps = self._plan()
        for i, step in self._steps:
            try:
                x = step.forward(x, training)
            except ShapeError as e:  # in a fused block, .offset says which of its layers
                raise ShapeError(f"{self._where(i + getattr(e, 'offset', 0))}: {e}") from None
        return x

    def _plan(self):
        """(index of first layer, step) pairs: the fast engine's steps, or the layers.

        The fast engine's plan is made once and kept while the model holds the same layers
        (fast.layers_key; a block's step checks its own), so that its steps can keep what
        they reuse from call to call (fast/memo.py).
        """
        if not self.fast:
            return list(enumerate(self.layers))
        made_for = fast_engine.layers_key(self.layers)
        if self._fast_plan[0] != made_for:
            self._fast_plan = (made_for, fast_engine.plan(self.layers))
        steps = self._fast_plan[1]
        for i, step in steps:  # layers a fast step computes keep no values of an old call
            if step is not self.layers[i]:
                for layer in step.layers:
                    layer.cache = None
        return steps

    def __call__(self, x, training=False):
        return self.forward(x, training)

    def backward(self, dout, input_grad=False):
        """Backpropagate dL/dlogits through every layer, filling each trainable Parameter's .grad.

        The first layer skips the gradient of the input images (nobody uses it) unless
        input_grad is True, in which case dL/dx (N, *input_shape) is returned (saliency).
        Likewise with frozen layers: below the lowest layer with a trainable parameter
        nobody needs a gradient, so that layer skips its input gradient and the layers
        under it are not visited.
        """
        if self._steps is None:
            raise RuntimeError("backward() needs a forward() first")
        trains = [any(p.trainable for p in step.parameters()) for _, step in self._steps]
        lowest = trains.index(True) if any(trains) else len(trains)  # lowest trainable step
        for k in reversed(range(len(self._steps))):
            step = self._steps[k][1]
            if k <= lowest and not input_grad:  # no step below k needs a gradient
                if trains[k]:
                    step.backward(dout, input_grad=False)
                return None
            dout = step.backward(dout)
        return dout

    def summary(self, input_shape=None, print_fn=print):
        """Print and return a table: per layer its output shape, parameters, multiply-adds
        and activation memory per image, and the totals.

        The result is the table's text (a str) that also carries the numbers:
        `.rows` (one dict per layer, see minicnn.layers.cost.cost; the layers inside a block
        follow its row, indented, with "path" and "depth" as layers.nested.nested_cost) and
        `.totals` ({"params", "macs", "activation_bytes"}, over the model's own layers: a
        block's row already counts the layers inside it; "trainable" and "non_trainable",
        the params split by Parameter.trainable (frozen ones are non-trainable); "buffers",
        the values of running statistics such as BatchNorm's, saved but not trained), for
        code and tests to read.
        """
        input_shape = tuple(input_shape or self.input_shape or ())
        if not input_shape:
            raise ValueError("summary needs an input_shape, e.g. (3, 64, 64)")
        self._shapes(input_shape)  # a ShapeError names the layer
        dtype = self.parameters()[0].data.dtype if self.parameters() else np.dtype(np.float32)
        rows = nested_cost(self.layers, input_shape, itemsize=dtype.itemsize)
        totals = {k: total(rows, k) for k in ("params", "macs", "activation_bytes")}
        params = self.parameters()  # each once, those inside blocks too
        totals["trainable"] = sum(p.size for p in params if p.trainable)
        totals["non_trainable"] = sum(p.size for p in params if not p.trainable)
        totals["buffers"] = sum(
            getattr(layer, name).size for layer in leaves(self.layers)
            for name in getattr(layer, "BUFFERS", ())
        )  # fmt: skip
        table = [("#", "layer", "output shape", "params", "MACs", "activations")]
        table.append(("", "input", str(input_shape), "", "", ""))
        for r in rows:
            table.append(
                (r["path"], "  " * r["depth"] + r["layer"], str(r["output_shape"]),
                 f"{r['params']:,}", _millions(r["macs"]), _kib(r["activation_bytes"]))
            )  # fmt: skip
        widths = [max(len(t[c]) for t in table) for c in range(6)]
        line = "-" * (sum(widths) + 10)

        def fmt(t):
            a, b, c, d, e, f = widths
            return f"{t[0]:>{a}}  {t[1]:<{b}}  {t[2]:<{c}}  {t[3]:>{d}}  {t[4]:>{e}}  {t[5]:>{f}}"

        out = [fmt(table[0]), line] + [fmt(t) for t in table[1:]] + [line]
        n = totals["params"]
        out.append(f"Total params: {n:,} ({n * dtype.itemsize / 1024:,.1f} KiB as {dtype})")
        frozen = totals["non_trainable"]
        split = f"Trainable params: {totals['trainable']:,}   Non-trainable params: {frozen:,}"
        out.append(split + (" (frozen)" if frozen else ""))
        if totals["buffers"]:
            out.append(f"  plus {totals['buffers']:,} running statistics "
                       "(BatchNorm buffers: saved, not trained)")  # fmt: skip
        out.append(
            f"Per image: {_millions(totals['macs'])} multiply-adds forward (training: about 3x), "
            f"{_kib(totals['activation_bytes'])} of activations"
        )
        text = Summary("\n".join(out))
        text.rows, text.totals = rows, totals
        if print_fn is not None:
            print_fn(text)
        return text

    def predict_logits(self, x, batch_size=256):
        """Forward pass in evaluation mode, in batches: x (N, C, H, W) -> (N, K)."""
        outs = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        if not outs:  # no images: no rows, but still one column per output
            shape = self.output_shape(x.shape[1:]) if x.ndim > 1 else ()
            return np.empty((0, *shape), dtype=np.float32)
        return np.concatenate(outs)

    def preprocess(self, images):
        """uint8 (N, C, H, W) -> float32 (x / 255 - mean) / std; float input is returned as is.

        Other integer types are refused: their pixel scale (0..255? 0..65535?) is unknown.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8:
            if not np.issubdtype(images.dtype, np.floating):
                raise TypeError(
                    f"images must be uint8 (0..255) or already preprocessed floats, "
                    f"got {images.dtype}"
                )
            return images
        x = images.astype(np.float32) / 255
        if self.mean is not None:
            mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
            std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def predict_proba(self, images, batch_size=256, tta=None):
        """Class probabilities (N, K) for uint8 images (N, C, H, W), preprocessed as in training.

        Float input is taken as already preprocessed. With a sigmoid head of one unit the
        result is (N, 2): [P(class 0), P(class 1)], so it lines up with class_names.
        tta "flip": the mean of the probabilities of each image and its mirror
        (forward_views).
        """
        return self.forward_views(self.preprocess(images), tta, batch_size)[1]

    def forward_views(self, x, tta=None, batch_size=256):
        """Evaluation-mode logits and probabilities of preprocessed x over its test-time views.

        x (N, C, H, W) -> (logits (N, U), probabilities (N, K)). tta None: one pass, its own
        logits. tta "flip" (minicnn.data.augment.views): the probabilities are the mean over
        each image and its mirror, and the logits those that give them back (logits_of).
        """
        logits = [self.predict_logits(v, batch_size) for v in views(x, tta)]
        if len(logits) == 1:
            return logits[0], self.probabilities(logits[0])
        probs = np.mean([self.probabilities(z) for z in logits], axis=0, dtype=logits[0].dtype)
        return logits_of(probs, self.output), probs

    def probabilities(self, logits):
        """Logits (N, K) -> class probabilities: softmax, or sigmoid for a sigmoid head.

        A sigmoid head of one unit gives (N, 2): [P(class 0), P(class 1)].
        """
        return probabilities(logits, self.output)

    def predict(self, images, batch_size=256, tta=None):
        """Most probable class index (N,) for each image; for two classes with a threshold
        set, class 1 where P(class 1) >= threshold. tta: as predict_proba."""
        probs = self.predict_proba(images, batch_size, tta)
        if self.threshold is not None and probs.shape[1] == 2:
            return (probs[:, 1] >= self.threshold).astype(np.int64)
        return probs.argmax(axis=1)
