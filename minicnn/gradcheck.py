"""Finite-difference gradient checks: the proof that every backward pass is right.

For a layer, the scalar checked is L = sum(forward(x) * R) with a fixed random R, so
dL/dy = R and backward(R) must give dL/dx and each parameter's grad. Each analytic
gradient is compared with the central difference (L(v + eps) - L(v - eps)) / (2 eps),
in float64, and the error of one array is

    rel_error(a, n) = ||a - n|| / max(||a|| + ||n||, 1e-12)

(norms over the coordinates checked). The functions return the worst over the input
gradient and every parameter gradient; 1e-6 or below means the backward is right.
"""

import numpy as np

from .layers.nested import walk


def rel_error(a, n):
    a, n = np.ravel(a), np.ravel(n)
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12))


def _rng_states(obj):
    layers = [lay for _, lay in walk(getattr(obj, "layers", [obj]))]  # inside blocks too
    return [(lay, lay.rng.bit_generator.state) for lay in layers if hasattr(lay, "rng")]


def _restore(states):
    for layer, state in states:
        layer.rng.bit_generator.state = state


def _numeric(f, array, coords, eps):
    """Central differences of scalar f() with respect to array.flat[coords]."""
    flat = array.reshape(-1)
    out = np.empty(len(coords))
    for k, i in enumerate(coords):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[k] = (plus - minus) / (2 * eps)
    return out


def _coords(size, max_checks, rng):
    if max_checks is None or size <= max_checks:
        return np.arange(size)
    return np.sort(rng.choice(size, max_checks, replace=False))


def check_layer(layer, x, training=False, eps=1e-6, max_checks=None, seed=0, details=False):
    """Worst relative error of layer.backward against finite differences.

    layer: any Layer (its parameters are converted to float64); x: input batch.
    training: passed to forward (Dropout's mask is replayed from a saved generator state).
    max_checks: check at most this many random coordinates per array (None: all).
    details=True returns {"x": err, "param0": err, ...} instead of the worst value.
    """
    rng = np.random.default_rng(seed)
    layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    states = _rng_states(layer)
    y = layer.forward(x, training)
    R = rng.standard_normal(y.shape)
    dx = layer.backward(R)
    analytic = [("x", x, dx)]
    analytic += [(f"param{i}", p.data, p.grad.copy()) for i, p in enumerate(layer.parameters())]

    def loss():
        _restore(states)
        return float((layer.forward(x, training) * R).sum())

    errors = {}
    for name, array, grad in analytic:
        idx = _coords(array.size, max_checks, rng)
        errors[name] = rel_error(grad.reshape(-1)[idx], _numeric(loss, array, idx, eps))
    return errors if details else max(errors.values())


def check_model(
    model,
    loss_fn,
    x,
    targets,
    training=False,
    eps=1e-6,
    max_checks=30,
    seed=0,
    details=False,
    fast=False,
):
    """Worst relative error of a whole model + loss against finite differences.

    Checks every parameter (at most max_checks random coordinates each) and the input.
    The check runs on the reference engine (the layers' own forward and backward) unless
    fast=True; model.fast is restored afterwards. tests/test_fast.py holds the fast engine
    to the reference.
    """
    before = model.fast
    model.fast = fast
    try:
        return _check_model(model, loss_fn, x, targets, training, eps, max_checks, seed, details)
    finally:
        model.fast = before


def _check_model(model, loss_fn, x, targets, training, eps, max_checks, seed, details):
    rng = np.random.default_rng(seed)
    model.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    states = _rng_states(model)

    def loss():
        _restore(states)
        return loss_fn.forward(model.forward(x, training), targets)

    loss()
    dx = model.backward(loss_fn.backward(), input_grad=True)
    analytic = [("x", x, dx)]
    analytic += [(f"param{i}", p.data, p.grad.copy()) for i, p in enumerate(model.parameters())]
    errors = {}
    for name, array, grad in analytic:
        idx = _coords(array.size, max_checks, rng)
        errors[name] = rel_error(grad.reshape(-1)[idx], _numeric(loss, array, idx, eps))
    return errors if details else max(errors.values())
