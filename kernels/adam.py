"""Adam update, one pass over a parameter's memory (Kingma & Ba, 2015, Algorithm 1)."""

import math

from .jit import jit


@jit
def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, t):
    """In-place update of flat arrays p, m, v from gradient g at step t (1-based).

    m = b1*m + (1-b1)*g ; v = b2*v + (1-b2)*g^2
    p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
    weight_decay adds weight_decay*p to g first (L2 penalty, as in torch.optim.Adam).
    """
    bc1 = 1.0 - beta1**t
    bc2 = 1.0 - beta2**t
    for i in range(p.size):
        gi = g[i] + weight_decay * p[i]
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m_hat = m[i] / bc1
        v_hat = v[i] / bc2
        p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
