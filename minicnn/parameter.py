"""Parameter: a weight array and the gradient of the loss with respect to it."""

import numpy as np


class Parameter:
    """Holds `.data` and `.grad`, numpy arrays of one shape.

    A layer's backward overwrites `.grad` (it does not accumulate), so there is no
    zero_grad step: each backward pass leaves exactly the gradient of the last batch.
    """

    def __init__(self, data):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

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
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"
