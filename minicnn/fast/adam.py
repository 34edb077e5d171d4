"""Adam's update in one pass over a parameter's memory: the fast engine's optimizer step.

It computes what the NumPy lines of minicnn.optim.Adam compute (Adam(fast=False), one line
per equation), for Adam and AdamW:

    p *= 1 - lr * weight_decay                     (AdamW only, here in NumPy)
    g = grad + weight_decay * p                    (Adam only: the L2 term)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    p -= lr * m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)

The NumPy lines pass over memory once per operation and make a temporary array for each;
the kernel (kernels/adam.py) reads and writes each element once. It folds the bias
corrections into two scalars, worked out once in float64, as PyTorch does,
p -= (lr / (1 - beta1**t)) * m / (sqrt(v) * (1 / sqrt(1 - beta2**t)) + eps), and runs in
the arrays' own precision, as the NumPy lines do: the two differ by rounding only, a few
units in the last place of p per step. tests/test_optim.py holds this step to the NumPy
lines over several steps (Adam and AdamW, with and without weight decay, groups without
decay, frozen parameters): float64 within 1e-12, float32 within the bound stated there.
"""

import numpy as np

import minicnn.kernels as kernels


def adam_step(p, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, t):
    """Update Parameter p and its moments m, v in place: step t (1-based) of Adam or AdamW.

    p: a Parameter (.data and .grad); m, v: contiguous arrays of p's shape and dtype.
    decoupled: AdamW's decay (p shrinks first, the moments never see it); otherwise the
    decay is an L2 term added to the gradient, as torch.optim.Adam.
    """
    if not p.data.flags.c_contiguous:
        p.data = np.ascontiguousarray(p.data)
    if decoupled and weight_decay:
        p.data *= 1 - lr * weight_decay
    kernels.adam.adam_step(
        p.data.reshape(-1),
        np.ascontiguousarray(p.grad, dtype=p.data.dtype).reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        lr,
        beta1,
        beta2,
        eps,
        0.0 if decoupled else weight_decay,
        t,
    )
