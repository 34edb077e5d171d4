"""Memo: a value made from some arrays, kept until one of those arrays changes; layers_key:
what a plan of layers is made from, kept likewise.

In evaluation a convolution step prepares its weights the same way on every call: the
Winograd transform U = G g G^T (winograd.py), a BatchNorm folded into them (batchnorm.py).
At batch 1 that preparation is most of the work (paper_res: about two thirds of a call,
more than the convolutions). So a step keeps the prepared weights in a Memo together with
a copy of the arrays they were made from; each call compares the arrays with those copies
(a read of each, nothing written) and makes the value again only when a value, a shape or
a dtype differs, however the change was made: an optimizer step, a load, `W.data[:] = ...`.
Training does not use it: its weights change at every step.
"""

import numpy as np


def same(a, b):
    """True when the arrays have the same shape, dtype and values (NaN counts as a change)."""
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


class Memo:
    """The value make() gave for a key and some arrays, made again when either changes."""

    def __init__(self):
        self.key, self.sources, self.value = None, None, None
        self.made = 0  # how many times make() ran

    def get(self, key, arrays, make):
        """make(), or the value of the last call if its key and arrays were equal to these."""
        kept = (
            self.sources is not None
            and key == self.key
            and len(arrays) == len(self.sources)
            and all(same(a, b) for a, b in zip(arrays, self.sources))
        )
        if not kept:
            self.value = make()
            self.key, self.sources = key, [np.array(a, copy=True) for a in arrays]
            self.made += 1
        return self.value


def layers_key(layers):
    """What the fast engine's plan of a list of layers depends on, to compare with ==: each
    layer (the object: == is identity) and whether it has no bias b (fast.plan fuses a
    Conv2D without one with the BatchNorm after it). A block's own lists are its step's to
    check (FastResidual). Cheap enough for every call: a tuple per layer, no walk."""
    return [(layer, getattr(layer, "b", None) is None) for layer in layers]
