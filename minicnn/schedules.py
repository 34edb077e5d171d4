"""Learning-rate schedules: the rate of each step, set on the optimizer's `lr`.

    optimizer = AdamW(model.parameters(), lr=2e-3)
    schedule = Cosine(optimizer, total_steps=epochs * steps_per_epoch, warmup_steps=500)
    for x, y in batches(...):  # what fit(..., schedule=schedule) does
        ...; optimizer.step(); schedule.step()

Step k counts the optimizer steps taken so far (k = 0 for the first batch). Making a
schedule sets optimizer.lr to rate(0); step() moves to k + 1 and sets rate(k + 1). A
schedule whose steps run out keeps its last rate. `base_lr` is optimizer.lr when the
schedule is made. state_dict() is plain JSON (a checkpoint keeps it, so --resume continues
on the same rates).
"""

import math


class Schedule:
    """The shared part: the step count, `lr`, step() and state; rate(k) is the schedule's."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.k = 0
        optimizer.lr = self.rate(0)

    def rate(self, k):
        raise NotImplementedError

    @property
    def lr(self):
        """The rate of the current step (what optimizer.lr holds)."""
        return self.rate(self.k)

    def step(self):
        """Advance one optimizer step and set optimizer.lr to the new rate."""
        self.k += 1
        self.optimizer.lr = self.rate(self.k)

    def state_dict(self):
        return {"type": type(self).__name__, "k": self.k, "base_lr": self.base_lr}

    def load_state_dict(self, state):
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"a {state['type']} schedule's state cannot load into {self!r}")
        self.k, self.base_lr = int(state["k"]), float(state["base_lr"])
        self.optimizer.lr = self.rate(self.k)

    def __repr__(self):
        return f"{type(self).__name__}(step {self.k}, lr {self.lr:.3g})"


def _cosine(start, end, pct):
    """From start (pct 0) to end (pct 1) along half a cosine."""
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


class Cosine(Schedule):
    """Linear warm-up from 0, then a cosine from base_lr down to min_lr (Loshchilov & Hutter).

    rate(k) = base_lr * k / warmup_steps                                 k < warmup_steps
    rate(k) = min_lr + (base_lr - min_lr) * (1 + cos(pi * j / J)) / 2    otherwise,
    with j = k - warmup_steps and J = total_steps - warmup_steps; min_lr for k >= total_steps.
    The warm-up is the one of Goyal et al. (2017) and of Hugging Face's
    get_cosine_schedule_with_warmup (rate 0 at step 0).
    """

    def __init__(self, optimizer, total_steps, warmup_steps=0, min_lr=0.0):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"Cosine needs 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}"
            )
        self.total_steps, self.warmup_steps, self.min_lr = total_steps, warmup_steps, min_lr
        super().__init__(optimizer)

    def rate(self, k):
        if k < self.warmup_steps:
            return self.base_lr * k / self.warmup_steps
        pct = min(k - self.warmup_steps, self.total_steps - self.warmup_steps) / (
            self.total_steps - self.warmup_steps
        )
        return _cosine(self.base_lr, self.min_lr, pct)


class Linear(Schedule):
    """Linear warm-up from 0, then a straight line from base_lr down to min_lr.

    rate(k) = base_lr * k / warmup_steps                                 k < warmup_steps
    rate(k) = min_lr + (base_lr - min_lr) * (1 - j / J)                  otherwise,
    with j = k - warmup_steps and J = total_steps - warmup_steps; min_lr for k >= total_steps.
    Decaying linearly to zero is what Li, Yumer and Ramanan (ICLR 2020, budgeted training)
    find the most robust for a fixed number of epochs; Hugging Face's
    get_linear_schedule_with_warmup is this schedule with min_lr 0.
    """

    def __init__(self, optimizer, total_steps, warmup_steps=0, min_lr=0.0):
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(
                f"Linear needs 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}"
            )
        self.total_steps, self.warmup_steps, self.min_lr = total_steps, warmup_steps, min_lr
        super().__init__(optimizer)

    def rate(self, k):
        if k < self.warmup_steps:
            return self.base_lr * k / self.warmup_steps
        J = self.total_steps - self.warmup_steps
        j = min(k - self.warmup_steps, J)
        return self.min_lr + (self.base_lr - self.min_lr) * (1 - j / J)


class Step(Schedule):
    """Multiply the rate by gamma every step_size steps, as torch.optim.lr_scheduler.StepLR.

    rate(k) = base_lr * gamma ** (k // step_size). Steps are batches (fit steps per batch):
    step_size = 10 * steps_per_epoch divides by ten every ten epochs.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        if step_size < 1:
            raise ValueError(f"Step needs step_size >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def rate(self, k):
        return self.base_lr * self.gamma ** (k // self.step_size)


class OneCycle(Schedule):
    """The one-cycle policy (Smith & Topin, 2019), as torch.optim.lr_scheduler.OneCycleLR.

    PyTorch's defaults, written down: anneal_strategy="cos", div_factor=25,
    final_div_factor=1e4, three_phase=False. With initial = max_lr / div_factor and
    final = initial / final_div_factor, and p = pct_start * total_steps - 1 (a float):
        rate(k) = cos_anneal(initial, max_lr, k / p)                          k <= p
        rate(k) = cos_anneal(max_lr, final, (k - p) / (total_steps - 1 - p))  otherwise
    with cos_anneal(a, b, t) = b + (a - b) * (1 + cos(pi * t)) / 2; the last rate, final,
    is reached at k = total_steps - 1 and kept afterwards (PyTorch raises past total_steps).
    The optimizer's own lr is not used. Unlike OneCycleLR's default, the momentum (Adam's
    beta1) is not cycled: this is OneCycleLR(..., cycle_momentum=False).
    """

    def __init__(
        self, optimizer, max_lr, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4
    ):
        if not (0.0 < pct_start < 1.0 and pct_start * total_steps > 1):
            raise ValueError(
                f"OneCycle needs 0 < pct_start < 1 and pct_start * total_steps > 1 (a warm-up "
                f"of more than one step), got pct_start {pct_start}, total_steps {total_steps}"
            )
        self.max_lr, self.total_steps, self.pct_start = max_lr, total_steps, pct_start
        self.initial_lr = max_lr / div_factor
        self.final_lr = self.initial_lr / final_div_factor
        super().__init__(optimizer)

    def rate(self, k):
        k = min(k, self.total_steps - 1)
        peak = float(self.pct_start * self.total_steps) - 1  # PyTorch's end of phase one
        if k <= peak:
            return _cosine(self.initial_lr, self.max_lr, k / peak)
        return _cosine(self.max_lr, self.final_lr, (k - peak) / (self.total_steps - 1 - peak))
