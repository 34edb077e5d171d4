"""Adam's update in one pass over a parameter's memory (Kingma & Ba, 2015, Algorithm 1).

The loop of minicnn/fast/adam.py, the fast engine's optimizer step. It computes Adam's NumPy
lines in minicnn/optim.py (Adam(fast=False)), reordered as below; tests/test_kernels.py
holds it to tests/naive.py's Adam, and tests/test_optim.py to those lines.
"""

import math

from .jit import jit


@jit
def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, t):
    """In-place update of flat arrays p, m, v from gradient g at step t (1-based).

    m = b1*m + (1-b1)*g ; v = b2*v + (1-b2)*g^2
    p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    weight_decay adds weight_decay*p to g first (L2 penalty, as in torch.optim.Adam).
    Computed in PyTorch's form, p -= (lr / (1-b1^t)) * m / (sqrt(v) * (1 / sqrt(1-b2^t)) + eps)
    (PyTorch divides by sqrt(1-b2^t)): the bias corrections are two scalars, worked out once
    in float64, and the loop runs in the arrays' own precision (no float64 square root and
    division per float32 element: measured 4x faster on a 1.2 M-parameter network).
    """
    T = p.dtype.type
    a1, c1, a2, c2 = T(beta1), T(1.0 - beta1), T(beta2), T(1.0 - beta2)
    step = T(lr / (1.0 - beta1**t))
    inv_sqrt_bc2 = T(1.0 / math.sqrt(1.0 - beta2**t))
    e, wd = T(eps), T(weight_decay)
    for i in range(p.size):
        gi = g[i] + wd * p[i]
        mi = a1 * m[i] + c1 * gi
        vi = a2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step * mi / (math.sqrt(vi) * inv_sqrt_bc2 + e)
