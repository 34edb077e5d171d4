"""Explain a prediction: Grad-CAM, saliency, occlusion, feature maps and filters.

    maps = minicnn.explain.grad_cam(model, images)         # (N, H, W) in [0, 1]
    maps = minicnn.explain.saliency(model, images, target=3)
    drop = minicnn.explain.occlusion(model, images, patch=8, stride=4)

Every method works on any Sequential, on either engine, through the model's own forward and
backward. A layer's activation A and its gradient come from cutting the model in two
Sequentials that share the same layer objects, head = layers[:i+1] and tail = layers[i+1:]:

    A = head.forward(x)                              # (N, C, H', W'), layer i's output
    logits = tail.forward(A)                         # (N, K)
    dA = tail.backward(dscore, input_grad=True)      # d(score)/dA, the shape of A

The score is the target's logit (before softmax), as in Grad-CAM (Selvaraju et al. 2017):
dscore is one-hot at the target; for a one-unit sigmoid model, target 1 explains the logit
and target 0 its negation. Saliency is the same with the whole model as the tail:
model.backward(dscore, input_grad=True) returns d(score)/dx. Like a training step, these
backward passes overwrite the parameters' .grad.

`images` is uint8 (N, C, H, W), preprocessed as in training (model.preprocess), or an already
normalised float batch. `target` is a class index, one per image or one for all; None takes
the predicted class.
"""

import numpy as np

from . import heads
from .layers import Conv2D
from .layers.base import output_shapes
from .sequential import Sequential

BATCH = 32  # images per forward/backward pass: bounds the memory the cached activations take


def _inputs(model, images):
    x = model.preprocess(images)
    if x.ndim != 4:
        raise ValueError(f"images must be a batch (N, C, H, W), got an array of shape {x.shape}")
    return x


def _name(model, i):
    return f"layer #{i} {model.layers[i]!r}"


def _index(model, layer):
    """A layer index (negative counts from the end) -> 0..len(model)-1, or a clear error."""
    n = len(model.layers)
    if not isinstance(layer, int | np.integer) or not -n <= layer < n:
        raise ValueError(f"layer {layer!r} is out of range: the model has {n} layers (0..{n - 1})")
    return int(layer) % n


def _spatial_layer(model, shapes, layer):
    """Index of a layer whose output is a (C, H', W') map, or an error naming the layer."""
    i = _index(model, layer)
    if len(shapes[i]) != 3:
        raise ValueError(
            f"{_name(model, i)} gives {shapes[i]}, not a (C, H, W) map: pick a layer before "
            "the Flatten (a Conv2D, ReLU or MaxPool2D)"
        )
    return i


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


def _split(model, i):
    """head = layers[:i+1], tail = layers[i+1:]: two Sequentials on the model's engine."""
    head = Sequential(model.layers[: i + 1], fast=model.fast)
    tail = Sequential(model.layers[i + 1 :], fast=model.fast)
    return head, tail


def _activations_and_grads(model, x, i, targets):
    """Per batch: (start, A, dA), A = layer i's output (x itself for i = -1), dA = d(score)/dA."""
    head, tail = (None, model) if i < 0 else _split(model, i)
    for s in range(0, len(x), BATCH):
        A = x[s : s + BATCH] if head is None else head.forward(x[s : s + BATCH])
        logits = tail.forward(A)
        t = heads.predictions(logits, model.output) if targets is None else targets[s : s + BATCH]
        yield s, A, tail.backward(_score_grad(model, logits, t), input_grad=True)


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
    - layer: index of the layer whose output A (N, C', H', W') is used; None: the last layer
      with spatial output
    Returns:
    - float array (N, H, W) in [0, 1]
    """
    x = _inputs(model, images)
    N, _, H, W = x.shape
    shapes = _shapes(model, x)
    convs = [i for i, lay in enumerate(model.layers) if isinstance(lay, Conv2D)]
    if not convs:
        raise ValueError(
            "Grad-CAM needs a convolutional layer and this model has none; "
            "saliency and occlusion explain any model"
        )
    if layer is None:
        i = [j for j, s in enumerate(shapes) if len(s) == 3 and j >= convs[0]][-1]
    else:
        i = _spatial_layer(model, shapes, layer)
        if i < convs[0]:
            raise ValueError(
                f"{_name(model, i)} comes before the first convolution "
                f"({_name(model, convs[0])}): Grad-CAM explains a convolution's output"
            )
    targets = _targets(model, shapes, target, N)
    maps = np.empty((N, H, W), dtype=x.dtype)
    for s, A, dA in _activations_and_grads(model, x, i, targets):
        alpha = dA.mean(axis=(2, 3))  # (n, C'): how much each channel matters
        cam = np.maximum(np.einsum("nc,nchw->nhw", alpha, A), 0)  # (n, H', W')
        maps[s : s + len(A)] = _scale(_upsample(cam, H, W))
    return maps


def saliency(model, images, target=None):
    """Saliency: |d(target logit)/d(input)|, the maximum over channels, scaled per image.

    Inputs: images uint8 (N, C, H, W) or normalised floats; target as in grad_cam.
    Returns: float array (N, H, W) in [0, 1].
    """
    x = _inputs(model, images)
    targets = _targets(model, _shapes(model, x), target, len(x))
    maps = np.empty((len(x), *x.shape[2:]), dtype=x.dtype)
    for s, A, dx in _activations_and_grads(model, x, -1, targets):
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
    """The output of one layer: images (N, C, H, W) -> (N, C', H', W') (that layer's maps)."""
    x = _inputs(model, images)
    i = _spatial_layer(model, _shapes(model, x), layer)
    head, _ = _split(model, i)
    return head.predict_logits(x, BATCH)  # a batched forward pass in evaluation mode


def filters(model, layer=0):
    """The weights of a Conv2D layer: (F, C, k, k), a copy."""
    i = _index(model, layer)
    if not isinstance(model.layers[i], Conv2D):
        convs = [j for j, lay in enumerate(model.layers) if isinstance(lay, Conv2D)]
        which = ", ".join(f"#{j}" for j in convs) or "none"
        raise ValueError(f"{_name(model, i)} has no filters; the Conv2D layers are {which}")
    return model.layers[i].W.data.copy()
