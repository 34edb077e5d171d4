"""Parameter: a weight array and the gradient of the loss with respect to it."""

import numpy as np


class Parameter:
    """Holds `.data` and `.grad`, numpy arrays of one shape, and `.trainable`.

    A layer's backward overwrites `.grad` (it does not accumulate), so there is no
    zero_grad step: each backward pass leaves exactly the gradient of the last batch.

    trainable (default True): False freezes the parameter. The optimizers then leave it
    as it is, and backward does not compute its gradient (`.grad` keeps whatever it held),
    so a frozen layer costs only the input gradient the layers below it need
    (Sequential.freeze / unfreeze set it per layer).
    """

    def __init__(self, data, trainable=True):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self.trainable = trainable

    @property
    def shape(self):
        return self.data.shape

    @property
    def size(self):
        return self.data.size

    def astype(self, dtype):
        """Store data as dtype (e.g. float64 for gradient checks) and reset grad to zeros."""
        self.data = np.ascontiguousarray(self.data, dtype=dtype)
        self.grad = np.zeros_like(self.data)
        return self

    def __repr__(self):
        frozen = "" if self.trainable else ", trainable=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
