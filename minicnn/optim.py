"""Optimizers. They live outside the layers and read each Parameter's .data and .grad."""

import numpy as np

from ._kernels import kernels


class SGD:
    """Stochastic gradient descent with optional momentum.

    v = momentum * v + grad ; p -= lr * v   (momentum 0: p -= lr * grad)
    """

    def __init__(self, parameters, lr, momentum=0.0):
        self.parameters = list(parameters)
        self.lr = lr
        self.momentum = momentum
        self.velocity = [np.zeros_like(p.data) for p in self.parameters]

    def step(self):
        for p, v in zip(self.parameters, self.velocity):
            if self.momentum:
                v *= self.momentum
                v += p.grad
                p.data -= self.lr * v
            else:
                p.data -= self.lr * p.grad

    def state_dict(self):
        return {"velocity": [v.copy() for v in self.velocity]}

    def load_state_dict(self, state):
        self.velocity = [
            np.array(v, dtype=p.data.dtype) for v, p in zip(state["velocity"], self.parameters)
        ]


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction.

    t += 1
    m = beta1 * m + (1 - beta1) * g          # first moment
    v = beta2 * v + (1 - beta2) * g**2       # second moment
    m_hat = m / (1 - beta1**t) ; v_hat = v / (1 - beta2**t)
    p -= lr * m_hat / (sqrt(v_hat) + eps)
    weight_decay adds weight_decay * p to g (L2, as torch.optim.Adam). m and v are created
    once, per parameter, and kept across steps. The update runs as one Numba pass per
    parameter (kernels/adam.py).
    """

    def __init__(self, parameters, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.parameters = list(parameters)
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.parameters]
        self.v = [np.zeros_like(p.data) for p in self.parameters]

    def step(self):
        self.t += 1
        for p, m, v in zip(self.parameters, self.m, self.v):
            if not p.data.flags.c_contiguous:
                p.data = np.ascontiguousarray(p.data)
            kernels.adam.adam_step(
                p.data.reshape(-1),
                np.ascontiguousarray(p.grad, dtype=p.data.dtype).reshape(-1),
                m.reshape(-1),
                v.reshape(-1),
                self.lr,
                self.beta1,
                self.beta2,
                self.eps,
                self.weight_decay,
                self.t,
            )

    def state_dict(self):
        return {"t": self.t, "m": [m.copy() for m in self.m], "v": [v.copy() for v in self.v]}

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.m = [np.array(m, dtype=p.data.dtype) for m, p in zip(state["m"], self.parameters)]
        self.v = [np.array(v, dtype=p.data.dtype) for v, p in zip(state["v"], self.parameters)]
