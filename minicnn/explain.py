"""Explain a prediction: Grad-CAM, saliency, occlusion, feature maps and filters.

    maps = minicnn.explain.grad_cam(model, images)         # (N, H, W) in [0, 1]
    share = minicnn.explain.region_shares(maps, masks)     # (N, R): mass inside each mask
    maps = minicnn.explain.saliency(model, images, target=3)
    drop = minicnn.explain.occlusion(model, images, patch=8, stride=4)

Every method works on any Sequential, on either engine, through the model's own forward and
backward. A layer is named by its index (negative counts from the end) or by its path, as
layers.nested.walk and summary() give it: "5" is the model's layer 5, "5.branch.3" the
fourth layer of the branch of the residual block at 5. To read the layer's activation A and
its gradient, the model is cut in two Sequentials that share the same layer objects: head =
the layers before the top-level layer k that holds the path, tail = the rest, in which the
layer at the path is wrapped in a _Tap that keeps its output and the gradient reaching it:

    h = head.forward(x)                              # the input of layer k
    logits = tail.forward(h)                         # the tap keeps A (N, C, H', W')
    tail.backward(dscore, input_grad=True)           # the tap keeps dA = d(score)/dA

The score is the target's logit (before softmax), as in Grad-CAM (Selvaraju et al. 2017):
dscore is one-hot at the target; for a one-unit sigmoid model, target 1 explains the logit
and target 0 its negation. Saliency is the same with the whole model as the tail:
model.backward(dscore, input_grad=True) returns d(score)/dx. Like a training step, these
backward passes overwrite the parameters' .grad.

`images` is uint8 (N, C, H, W), preprocessed as in training (model.preprocess), or an already
normalised float batch. `target` is a class index, one per image or one for all; None takes
the predicted class.
"""

import copy

import numpy as np

from . import heads
from .layers import Conv2D
from .layers.base import Layer, output_shapes
from .layers.nested import children, walk
from .sequential import Sequential

BATCH = 32  # images per forward/backward pass: bounds the memory the cached activations take


def _inputs(model, images):
    x = model.preprocess(images)
    if x.ndim != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got an array of shape {x.shape}")
    return x


def layer_arg(text):
    """A --layer value from the command line: an index ("5", "-1") or a path ("5.branch.3")."""
    try:
        return int(text)
    except ValueError:
        return text


def locate(model, layer):
    """A layer index or path -> (path, the layer), or a clear error.

    An index counts the model's own layers (negative from the end); a path is one of
    walk(model.layers)'s, e.g. "5" or "5.branch.3" (a layer inside the residual block 5).
    """
    n = len(model.layers)
    if isinstance(layer, int | np.integer):
        if not -n <= layer < n:
            raise ValueError(
                f"layer {layer!r} is out of range: the model has {n} layers (0..{n - 1})"
            )
        return str(int(layer) % n), model.layers[int(layer) % n]
    layers = dict(walk(model.layers))
    if not isinstance(layer, str) or layer not in layers:
        inner = [p for p in layers if "." in p]
        where = f"; inside blocks: {inner[0]} .. {inner[-1]}" if inner else ""
        raise ValueError(
            f"layer {layer!r} is not in the model: give an index 0..{n - 1} or a path as "
            f"summary() shows it{where}"
        )
    return layer, layers[layer]


def _name(path, layer):
    return f"layer #{path} {layer!r}"


def _path_shapes(layers, input_shape, prefix=""):
    """{path: per-sample output shape} of every layer, as walk names them; a list inside a
    block takes the block's input (Residual's branch and shortcut)."""
    shapes, inputs = {}, [tuple(input_shape)] + output_shapes(layers, input_shape)
    for i, layer in enumerate(layers):
        shapes[f"{prefix}{i}"] = inputs[i + 1]
        for name, inner in children(layer):
            shapes.update(_path_shapes(inner, inputs[i], f"{prefix}{i}.{name}."))
    return shapes


def _spatial_layer(model, x, layer):
    """The path of a layer whose output is a (C, H', W') map, or an error naming the layer."""
    path, found = locate(model, layer)
    shape = _path_shapes(model.layers, x.shape[1:])[path]
    if len(shape) != 3:
        raise ValueError(
            f"{_name(path, found)} gives {shape}, not a (C, H, W) map: pick a layer before "
            "the Flatten (a Conv2D, ReLU, MaxPool2D or residual block)"
        )
    return path


class _Tap(Layer):
    """Stands in for one layer: runs it, keeping its output A and the gradient dA reaching it."""

    def __init__(self, layer):
        self.layer, self.A, self.dA = layer, None, None

    def forward(self, x, training=False):
        self.A = self.layer.forward(x, training)
        return self.A

    def backward(self, dout, input_grad=True):
        self.dA = dout
        return self.layer.backward(dout, input_grad=input_grad)

    def parameters(self):
        return self.layer.parameters()

    def output_shape(self, input_shape):
        return self.layer.output_shape(input_shape)

    def __repr__(self):
        return repr(self.layer)


def _tapped(layers, path, tap):
    """A copy of the list layers with the layer at path replaced by tap.

    The blocks on the way are shallow copies (copy.copy) that share every other layer, so
    the model itself is left as it was: "5.branch.3" -> layers[5] copied, its branch a new
    list whose item 3 is the tap.
    """
    first, _, rest = path.partition(".")
    layers, i = list(layers), int(first)
    if not rest:
        layers[i] = tap
        return layers
    name, _, inner = rest.partition(".")
    block = copy.copy(layers[i])
    setattr(block, name, _tapped(getattr(block, name), inner, tap))
    layers[i] = block
    return layers


def _shapes(model, x):
    """Per-sample output shape of every layer for the batch x; the model must end in scores."""
    model.output_shape(x.shape[1:])  # a mismatch raises a ShapeError naming the layer
    shapes = output_shapes(model.layers, x.shape[1:])
    if len(shapes[-1]) != 1:
        raise ValueError(f"the model must end in class scores (N, K); it gives {shapes[-1]}")
    return shapes


def _targets(model, shapes, target, N):
    """The requested classes as an int array (N,), or None for "the predicted class"."""
    K = heads.num_classes(shapes[-1][0], model.output)  # a one-unit sigmoid head: 2
    if target is None:
        return None
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"target must be a class index (int), got {target!r}")
    if t.ndim > 1 or t.size not in (1, N):
        raise ValueError(f"target must be one class index or one per image ({N}), got {t.shape}")
    bad = t[(t < 0) | (t >= K)]
    if bad.size:
        raise ValueError(
            f"target class {int(bad.flat[0])} is out of range: the model has {K} classes "
            f"(0..{K - 1})"
        )
    return np.broadcast_to(t.reshape(-1), (N,)).astype(np.intp)


def _score_grad(model, logits, t):
    """d(score)/d(logits) (n, units): one-hot at t; one sigmoid unit: +1 (class 1), -1 (class 0)."""
    d = np.zeros_like(logits)
    if heads.single_unit(logits.shape[1], model.output):
        d[:, 0] = np.where(t == 1, 1, -1)
    else:
        d[np.arange(len(t)), t] = 1
    return d


def _cut(model, path):
    """head (the layers before the top-level layer holding path; None if none), tail (the
    rest, with the layer at path tapped) and the tap; both Sequentials on the model's engine."""
    k = int(path.partition(".")[0])
    tap = _Tap(dict(walk(model.layers))[path])
    layers = _tapped(model.layers, path, tap)
    head = Sequential(layers[:k], fast=model.fast) if k else None
    return head, Sequential(layers[k:], fast=model.fast), tap


def _activations_and_grads(model, x, path, targets):
    """Per batch: (start, A, dA), A = the output of the layer at path (x itself for None),
    dA = d(score)/dA."""
    head, tail, tap = (None, model, None) if path is None else _cut(model, path)
    for s in range(0, len(x), BATCH):
        h = x[s : s + BATCH] if head is None else head.forward(x[s : s + BATCH])
        logits = tail.forward(h)
        t = heads.predictions(logits, model.output) if targets is None else targets[s : s + BATCH]
        dx = tail.backward(_score_grad(model, logits, t), input_grad=True)
        yield (s, h, dx) if tap is None else (s, tap.A, tap.dA)


def _resize_matrix(n_out, n_in):
    """(n_out, n_in) weights of linear interpolation with half-pixel centres, edges clamped."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    R = np.zeros((n_out, n_in))
    np.add.at(R, (np.arange(n_out), i0), 1 - frac)
    np.add.at(R, (np.arange(n_out), i1), frac)
    return R


def _upsample(maps, H, W):
    """Bilinear resize (N, h, w) -> (N, H, W), as Pillow's and OpenCV's resize place pixels."""
    _, h, w = maps.shape
    return (_resize_matrix(H, h) @ maps @ _resize_matrix(W, w).T).astype(maps.dtype)


def _scale(maps):
    """Divide each (H, W) map by its maximum: values in [0, 1]; an all-zero map stays zero."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def grad_cam(model, images, target=None, layer=None):
    """Grad-CAM: where in the image the evidence for the target class lies.

    weights alpha_c = spatial mean of d(score)/dA_c; map = ReLU(sum_c alpha_c A_c), resized
    bilinearly to the input size and divided by its maximum per image.

    Inputs:
    - images: uint8 (N, C, H, W) or a normalised float batch
    - target: class index (int, or (N,) ints); None: the predicted class
    - layer: index or path ("5.branch.3") of the layer whose output A (N, C', H', W') is
      used; None: the last of the model's own layers with a spatial output (in a residual
      network, the last block's output)
    Returns:
    - float array (N, H, W) in [0, 1]
    """
    x = _inputs(model, images)
    N, _, H, W = x.shape
    shapes = _shapes(model, x)
    order = [path for path, _ in walk(model.layers)]  # depth-first: a block, then its layers
    convs = [k for k, (_, lay) in enumerate(walk(model.layers)) if isinstance(lay, Conv2D)]
    if not convs:
        raise ValueError(
            "Grad-CAM needs a convolutional layer and this model has none; "
            "saliency and occlusion explain any model"
        )
    first = int(order[convs[0]].partition(".")[0])  # the top-level layer holding it
    if layer is None:  # the last map of the model's own layers: a residual block counts
        path = str([j for j, s in enumerate(shapes) if len(s) == 3 and j >= first][-1])
    else:
        path = _spatial_layer(model, x, layer)
        k = order.index(path)
        end = max(j for j, p in enumerate(order) if j == k or p.startswith(path + "."))
        if convs[0] > end:  # no convolution before it nor inside it
            first_conv = dict(walk(model.layers))[order[convs[0]]]
            raise ValueError(
                f"{_name(path, dict(walk(model.layers))[path])} comes before the first "
                f"convolution ({_name(order[convs[0]], first_conv)}): Grad-CAM explains a "
                "convolution's output"
            )
    targets = _targets(model, shapes, target, N)
    maps = np.empty((N, H, W), dtype=x.dtype)
    for s, A, dA in _activations_and_grads(model, x, path, targets):
        alpha = dA.mean(axis=(2, 3))  # (n, C'): how much each channel matters
        cam = np.maximum(np.einsum("nc,nchw->nhw", alpha, A), 0)  # (n, H', W')
        maps[s : s + len(A)] = _scale(_upsample(cam, H, W))
    return maps


def region_shares(maps, masks):
    """The share of each map's mass that lies inside each mask.

    share[n, r] = sum(maps[n] * masks[r]) / sum(maps[n]).
    Inputs: maps (N, H, W), values >= 0 (grad_cam's, saliency's); masks bool (R, H, W).
    Returns: float (N, R) in [0, 1]; a row of nan for a map that is zero everywhere.
    """
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=np.float64)
    if maps.ndim != 3 or masks.ndim != 3 or maps.shape[1:] != masks.shape[1:]:
        raise ValueError(f"maps (N, H, W) and masks (R, H, W) must match, got {maps.shape} "
                         f"and {masks.shape}")  # fmt: skip
    inside = np.einsum("nhw,rhw->nr", maps, masks)  # (N, R)
    total = maps.sum(axis=(1, 2))[:, None]  # (N, 1)
    return np.divide(inside, total, out=np.full(inside.shape, np.nan), where=total > 0)


def saliency(model, images, target=None):
    """Saliency: |d(target logit)/d(input)|, the maximum over channels, scaled per image.

    Inputs: images uint8 (N, C, H, W) or normalised floats; target as in grad_cam.
    Returns: float array (N, H, W) in [0, 1].
    """
    x = _inputs(model, images)
    targets = _targets(model, _shapes(model, x), target, len(x))
    maps = np.empty((len(x), *x.shape[2:]), dtype=x.dtype)
    for s, A, dx in _activations_and_grads(model, x, None, targets):
        maps[s : s + len(A)] = _scale(np.abs(dx).max(axis=1))
    return maps


def _starts(size, patch, stride):
    """Patch origins along one axis: every stride, plus one flush with the far edge."""
    if patch >= size:
        return [0]
    starts = list(range(0, size - patch + 1, stride))
    return starts if starts[-1] == size - patch else starts + [size - patch]


def occlusion(model, images, target=None, patch=8, stride=4, fill=0.0):
    """Occlusion: how much the target's probability drops when a patch is hidden.

    Each patch x patch square (every stride pixels, the last flush with the edge) is set to
    fill (in normalised units: 0 is the training mean) in all channels; a pixel's value is the
    drop p(image) - p(occluded), averaged over the patches that cover it. Not scaled: the
    values are probabilities, and negative where hiding a patch raises the probability. The
    occluded copies of all images go through the model in full batches.

    Inputs: images uint8 (N, C, H, W) or normalised floats; target as in grad_cam;
    patch, stride: ints >= 1; fill: float.
    Returns: float array (N, H, W).
    """
    if not (isinstance(patch, int) and isinstance(stride, int) and patch >= 1 and stride >= 1):
        raise ValueError(f"patch and stride must be ints >= 1, got {patch!r} and {stride!r}")
    x = _inputs(model, images)
    N, _, H, W = x.shape
    targets = _targets(model, _shapes(model, x), target, N)
    probs = model.probabilities(model.predict_logits(x, BATCH))  # (N, K)
    t = probs.argmax(1) if targets is None else targets  # argmax: the predicted class
    ph, pw = min(patch, H), min(patch, W)
    boxes = [(y, x0) for y in _starts(H, patch, stride) for x0 in _starts(W, patch, stride)]
    cover = np.zeros((H, W))
    for y, x0 in boxes:
        cover[y : y + ph, x0 : x0 + pw] += 1
    jobs = [(n, y, x0) for n in range(N) for y, x0 in boxes]  # every occluded copy
    total = np.zeros((N, H, W))
    for s in range(0, len(jobs), BATCH):
        chunk = jobs[s : s + BATCH]
        n = np.array([job[0] for job in chunk])
        batch = x[n]  # (b, C, H, W), a copy
        for k, (_, y, x0) in enumerate(chunk):
            batch[k, :, y : y + ph, x0 : x0 + pw] = fill
        p = model.probabilities(model.forward(batch))[np.arange(len(n)), t[n]]
        drop = probs[n, t[n]] - p
        for k, (m, y, x0) in enumerate(chunk):
            total[m, y : y + ph, x0 : x0 + pw] += drop[k]
    return (total / cover).astype(x.dtype)


def feature_maps(model, images, layer):
    """The output of one layer (index or path): images (N, C, H, W) -> (N, C', H', W')."""
    x = _inputs(model, images)
    path = _spatial_layer(model, x, layer)
    head, tail, tap = _cut(model, path)
    upto = Sequential(tail.layers[:1], fast=model.fast)  # layer k, holding the tap
    maps = []
    for s in range(0, len(x), BATCH):  # batched forward passes in evaluation mode
        h = x[s : s + BATCH] if head is None else head.forward(x[s : s + BATCH])
        upto.forward(h)
        maps.append(np.array(tap.A))  # a copy: a fast step may reuse its output buffer
    return np.concatenate(maps)


def filters(model, layer=0):
    """The weights of a Conv2D layer (index or path): (F, C, k, k), a copy."""
    path, found = locate(model, layer)
    if not isinstance(found, Conv2D):
        convs = [p for p, lay in walk(model.layers) if isinstance(lay, Conv2D)]
        which = ", ".join(f"#{p}" for p in convs) or "none"
        raise ValueError(f"{_name(path, found)} has no filters; the Conv2D layers are {which}")
    return found.W.data.copy()
