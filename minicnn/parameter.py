"""Parameter: a weight array and the gradient of the loss with respect to it."""

import numpy as np


class Parameter:
    """Holds `.data` and `.grad`, numpy arrays of one shape, and `.trainable`.

    A layer's backward overwrites `.grad` (it does not accumulate), so there is no
    zero_grad step: each backward pass leaves exactly the gradient of the last batch.

    trainable (default True): False freezes the parameter: SGD, Adam and AdamW never update
    it (Sequential.freeze / unfreeze set it per layer). Its `.grad` is not to be relied on:
    a reference layer computes it like any other, but Sequential.backward does not visit the
    layers below the lowest trainable one, and the fast engine's convolution steps skip the
    gradients of frozen parameters.
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
