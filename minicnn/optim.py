"""Optimizers. They live outside the layers and read each Parameter's .data and .grad."""

import numpy as np

from . import kernels


class SGD:
    """Stochastic gradient descent with optional momentum.

    v = momentum * v + grad ; p -= lr * v   (momentum 0: p -= lr * grad)
    A frozen parameter (trainable False) is skipped: neither it nor its velocity moves.
    """

    def __init__(self, parameters, lr, momentum=0.0):
        self.parameters = list(parameters)
        self.lr = lr
        self.momentum = momentum
        self.velocity = [np.zeros_like(p.data) for p in self.parameters]

    def step(self):
        for p, v in zip(self.parameters, self.velocity):
            if not p.trainable:
                continue
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
    """The 1-D Parameters (biases, BatchNorm's gamma and beta): the usual no_decay list.

    Decaying them only shrinks offsets and scales that the next BatchNorm undoes (timm and
    most recipes exclude every parameter with ndim <= 1).
    """
    return [p for p in parameters if p.data.ndim <= 1]


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
    parameters: Parameters, or parameter groups with their own weight_decay; no_decay:
    Parameters left undecayed (see param_groups). `lr` may be changed between steps
    (minicnn.schedules does). m, v and self.parameters follow the groups' order.
    A frozen parameter (trainable False) is skipped: no decay, no step, its m and v stay;
    t counts the optimizer's steps, so a parameter unfrozen later starts its moments at
    zero with a bias correction near 1 (fine-tuning makes a new optimizer per stage).
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
    ):
        self.param_groups = param_groups(parameters, weight_decay, no_decay)
        self.parameters = [p for g in self.param_groups for p in g["params"]]
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
        decays = [g["weight_decay"] for g in self.param_groups for _ in g["params"]]
        for p, m, v, wd in zip(self.parameters, self.m, self.v, decays):
            if not p.trainable:
                continue
            if not p.data.flags.c_contiguous:
                p.data = np.ascontiguousarray(p.data)
            if self.decoupled and wd:
                p.data *= 1 - self.lr * wd  # AdamW: p -= lr * weight_decay * p, first
            kernels.adam.adam_step(
                p.data.reshape(-1),
                np.ascontiguousarray(p.grad, dtype=p.data.dtype).reshape(-1),
                m.reshape(-1),
                v.reshape(-1),
                self.lr,
                self.beta1,
                self.beta2,
                self.eps,
                0.0 if self.decoupled else wd,
                self.t,
            )

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

    Each step first shrinks the weights, p -= lr * weight_decay * p, then takes the Adam
    step above with the plain gradient (no L2 term in g, so m and v never see the decay).
    Defaults as PyTorch: weight_decay=1e-2. Groups and no_decay as Adam.
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
    ):
        super().__init__(parameters, lr, beta1, beta2, eps, weight_decay, no_decay)
