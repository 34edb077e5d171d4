"""Optimizers: SGD, Adam and AdamW, each step written as the equations of its paper.

They live outside the layers: a step reads each Parameter's .grad and moves its .data. A
frozen Parameter (trainable False) is skipped: it and its optimizer state stay as they are.
"""

import numpy as np

from .fast import adam as fast_adam


class SGD:
    """Stochastic gradient descent with optional momentum, as torch.optim.SGD (dampening 0).

        g = g + weight_decay * p      the L2 term (weight_decay 0: none)
        v = momentum * v + g          the velocity (momentum 0: plain SGD, p -= lr * g)
        p -= lr * v                   or, nesterov=True: p -= lr * (g + momentum * v)

    parameters: Parameters, or groups {"params": [...], "weight_decay": wd} (param_groups);
    no_decay: Parameters whose weight_decay is 0.
    Shape: v has the shape and dtype of its parameter; state_dict() = {"velocity": [v, ...]}.
    """

    def __init__(self, parameters, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 no_decay=()):  # fmt: skip
        if nesterov and momentum <= 0:
            raise ValueError(f"SGD(nesterov=True) needs a momentum > 0, got {momentum}")
        self.param_groups = param_groups(parameters, weight_decay, no_decay)
        self.parameters = [p for g in self.param_groups for p in g["params"]]
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity = [np.zeros_like(p.data) for p in self.parameters]

    def step(self):
        lr, mu = self.lr, self.momentum
        decays = [g["weight_decay"] for g in self.param_groups for _ in g["params"]]
        for p, v, wd in zip(self.parameters, self.velocity, decays):
            if not p.trainable:
                continue
            g = p.grad
            if wd:
                g = g + wd * p.data  # g_t <- g_t + lambda theta_{t-1}
            if not mu:
                p.data -= lr * g  # theta <- theta - lr g
                continue
            v *= mu  # v <- mu v + g, in place: v is kept from step to step
            v += g
            if self.nesterov:
                p.data -= lr * (g + mu * v)  # theta <- theta - lr (g + mu v)
            else:
                p.data -= lr * v  # theta <- theta - lr v

    def state_dict(self):
        return {"velocity": [v.copy() for v in self.velocity]}

    def load_state_dict(self, state):
        self.velocity = [
            np.array(v, dtype=p.data.dtype) for v, p in zip(state["velocity"], self.parameters)
        ]


def param_groups(parameters, weight_decay, no_decay=()):
    """Parameter groups as PyTorch's optimizers take them, each with its own weight decay.

    parameters: an iterable of Parameters, or of dicts {"params": [...], "weight_decay": wd}
    ("weight_decay" optional: the optimizer's by default). no_decay: Parameters to leave
    undecayed (e.g. biases_and_norms(model.parameters())); each group is split in two.
    Returns a list of dicts {"params": [Parameter, ...], "weight_decay": float}, no empty one.
    """
    items = list(parameters)
    if not all(isinstance(g, dict) for g in items):
        items = [{"params": items}]
    skip = {id(p) for p in no_decay}
    groups, seen = [], set()
    for g in items:
        unknown = set(g) - {"params", "weight_decay"}
        if unknown or "params" not in g:
            raise ValueError(
                f'a parameter group has the keys "params" and optionally "weight_decay", '
                f"got {sorted(g)}"
            )
        params = list(g["params"])
        for p in params:
            if id(p) in seen:
                raise ValueError(f"{p!r} is in more than one parameter group")
            seen.add(id(p))
        wd = float(g.get("weight_decay", weight_decay))
        groups.append({"params": [p for p in params if id(p) not in skip], "weight_decay": wd})
        groups.append({"params": [p for p in params if id(p) in skip], "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def biases_and_norms(parameters):
    """The Parameters with ndim <= 1 (biases, BatchNorm's gamma and beta): the usual no_decay."""
    return [p for p in parameters if p.data.ndim <= 1]


class Adam:
    """Adam (Kingma & Ba, 2015, Algorithm 1) with bias correction, as torch.optim.Adam.

    At step t (t = 1, 2, ...), for each parameter p with gradient g:

        g = g + weight_decay * p                 the L2 term (weight_decay 0: none)
        m = beta1 * m + (1 - beta1) * g          first moment
        v = beta2 * v + (1 - beta2) * g**2       second moment
        m_hat = m / (1 - beta1**t)               bias corrections
        v_hat = v / (1 - beta2**t)
        p -= lr * m_hat / (sqrt(v_hat) + eps)

    parameters: Parameters, or groups {"params": [...], "weight_decay": wd} (param_groups);
    no_decay: Parameters whose weight_decay is 0. lr may change between steps (schedules).
    fast (default True): the fused step of the fast engine (minicnn/fast/adam.py, one Numba
    pass per parameter); False: the NumPy lines in step(), one per equation. Both run in the
    arrays' own precision, with 1 - beta**t as float64 scalars.

    State: t, and m, v of each parameter's shape and dtype, in the order of self.parameters
    (the groups' order); state_dict() = {"t": t, "m": [...], "v": [...]}.
    """

    decoupled = False  # AdamW: the decay is a step of its own, not part of g

    def __init__(
        self,
        parameters,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=0.0,
        no_decay=(),
        fast=True,
    ):
        self.param_groups = param_groups(parameters, weight_decay, no_decay)
        self.parameters = [p for g in self.param_groups for p in g["params"]]
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.fast = fast
        self.t = 0
        self.m = [np.zeros(p.shape, p.data.dtype) for p in self.parameters]
        self.v = [np.zeros(p.shape, p.data.dtype) for p in self.parameters]

    def step(self):
        self.t += 1
        lr, b1, b2, eps = float(self.lr), float(self.beta1), float(self.beta2), float(self.eps)
        bias1, bias2 = 1 - b1**self.t, 1 - b2**self.t  # the bias corrections: float64 scalars
        decays = [g["weight_decay"] for g in self.param_groups for _ in g["params"]]
        for p, m, v, wd in zip(self.parameters, self.m, self.v, decays):
            if not p.trainable:
                continue  # frozen: no decay, no step; its m and v stay
            if self.fast:  # the lines below in one Numba pass over p, m and v
                fast_adam.adam_step(
                    p, m, v, self.lr, self.beta1, self.beta2, self.eps, wd, self.decoupled, self.t
                )
            else:  # the NumPy lines, one per equation, in p's own precision
                g = p.grad.astype(p.data.dtype, copy=False)
                if self.decoupled and wd:
                    p.data *= 1 - lr * wd  # AdamW, first: theta <- (1 - alpha lambda) theta
                elif wd:
                    g = g + wd * p.data  # Adam's L2 term: g_t <- g_t + lambda theta_{t-1}
                m[:] = b1 * m + (1 - b1) * g  # m_t = beta1 m_{t-1} + (1 - beta1) g_t
                v[:] = b2 * v + (1 - b2) * g * g  # v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
                m_hat = m / bias1  # m^_t = m_t / (1 - beta1^t)
                v_hat = v / bias2  # v^_t = v_t / (1 - beta2^t)
                # theta_t = theta_{t-1} - alpha m^_t / (sqrt(v^_t) + eps)
                p.data -= lr * m_hat / (np.sqrt(v_hat) + eps)

    def state_dict(self):
        return {"t": self.t, "m": [m.copy() for m in self.m], "v": [v.copy() for v in self.v]}

    def load_state_dict(self, state):
        for key in ("m", "v"):
            shapes = [np.shape(a) for a in state[key]]
            if shapes != [p.shape for p in self.parameters]:
                raise ValueError(
                    f"the saved optimizer state ({len(shapes)} arrays of {key}) does not fit "
                    f"this optimizer's {len(self.parameters)} parameters in order (another "
                    "model, or other parameter groups / no_decay?)"
                )
        self.t = int(state["t"])
        self.m = [np.array(m, dtype=p.data.dtype) for m, p in zip(state["m"], self.parameters)]
        self.v = [np.array(v, dtype=p.data.dtype) for v, p in zip(state["v"], self.parameters)]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as torch.optim.AdamW.

    Each step first shrinks the weights, p *= 1 - lr * weight_decay, then takes Adam's step
    with the plain gradient: no L2 term in g, so m and v never see the decay.
    Defaults as PyTorch's (weight_decay=1e-2); groups, no_decay and fast as Adam.
    """

    decoupled = True

    def __init__(
        self,
        parameters,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=1e-2,
        no_decay=(),
        fast=True,
    ):
        super().__init__(parameters, lr, beta1, beta2, eps, weight_decay, no_decay, fast)
