"""BatchNorm2D and BatchNorm1D: normalise each channel with its batch statistics.

Ioffe & Szegedy, 2015. One rule serves both layers; they differ only in the axes the
statistics are taken over: (N, H, W) for BatchNorm2D, (N,) for BatchNorm1D.
"""

import numpy as np

from ..parameter import Parameter
from .base import Layer, ShapeError, expect_ndim
from .nested import leaves


class _BatchNorm(Layer):
    """out = gamma * (x - mean) / sqrt(var + eps) + beta, per channel.

    Training: mean and var are the batch's (var biased, divided by m, the number of values
    per channel: moments), and the running statistics move towards them as in PyTorch:
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)
    Evaluation uses the running statistics; so does training when batch_statistics says
    no (a frozen layer, or freeze_statistics(); docs/batchnorm.md says when to want that).

    Backward, batch statistics (they depend on x, so every x gets a share):
        xhat = (x - mean) / std ; dbeta = sum(dout) ; dgamma = sum(dout * xhat)   (sums)
        dx = gamma / std * (dout - (dbeta + xhat * dgamma) / m)
    Backward, running statistics (mean and std are constants): dx = gamma / std * dout.
    Sums run over the same axes as the statistics.
    """

    AXES = None  # axes of the statistics, set by the subclass
    NDIM = None  # dimensions of a batch
    BUFFERS = ("running_mean", "running_var")  # plain arrays saved with the model
    statistics_frozen = False  # freeze_statistics(): the running statistics, also in training

    def __init__(self, num_features, momentum=0.1, eps=1e-5):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.gamma = Parameter(np.ones(num_features, dtype=np.float32))
        self.beta = Parameter(np.zeros(num_features, dtype=np.float32))
        self.running_mean = np.zeros(num_features, dtype=np.float32)
        self.running_var = np.ones(num_features, dtype=np.float32)

    def parameters(self):
        return [self.gamma, self.beta]

    def config(self):
        return dict(num_features=self.num_features, momentum=self.momentum, eps=self.eps)

    def __repr__(self):
        return f"{type(self).__name__}({self.num_features})"

    def astype(self, dtype):
        self.running_mean = self.running_mean.astype(dtype)
        self.running_var = self.running_var.astype(dtype)
        return super().astype(dtype)

    def output_shape(self, input_shape):
        if len(input_shape) != self.NDIM - 1 or input_shape[0] != self.num_features:
            want = "(C, H, W)" if self.NDIM == 4 else "(F,)"
            raise ShapeError(
                f"{self!r} expects {want} with {self.num_features} channels, "
                f"got {tuple(input_shape)}"
            )
        return tuple(input_shape)

    def macs(self, input_shape):
        """One multiply-add per value (out = x * scale + shift, once the statistics are fixed)."""
        return int(np.prod(input_shape))

    def _per_channel(self, v, dtype):
        """(C,) -> (1, C, 1, 1) or (1, C), ready to broadcast against a batch."""
        shape = [1] * self.NDIM
        shape[1] = self.num_features
        return np.asarray(v).astype(dtype, copy=False).reshape(shape)

    def freeze_statistics(self, frozen=True):
        """Normalise with the running statistics in training too, and leave them as they
        are, while gamma and beta still train (frozen=False: the batch's again). Returns self."""
        self.statistics_frozen = bool(frozen)
        return self

    @property
    def keep_statistics(self):
        """The older name of statistics_frozen (set it with freeze_statistics)."""
        return self.statistics_frozen

    @keep_statistics.setter
    def keep_statistics(self, value):
        self.freeze_statistics(value)

    def batch_statistics(self, training):
        """True when a forward normalises with the batch's statistics: in training, unless
        the layer is frozen (gamma and beta not trainable) or its statistics are."""
        trainable = self.gamma.trainable or self.beta.trainable
        return training and trainable and not self.statistics_frozen

    def moments(self, x):
        """x (N, C, ...) -> mean, biased var (C,) over AXES, and m, the values per channel."""
        return x.mean(axis=self.AXES), x.var(axis=self.AXES), x.size // self.num_features

    def sums(self, dout, xhat):
        """dbeta = sum(dout), dgamma = sum(dout * xhat), (C,) each, over AXES."""
        return dout.sum(axis=self.AXES), (dout * xhat).sum(axis=self.AXES)

    def forward(self, x, training=False):
        expect_ndim(self, x, self.NDIM, "a batch (N, C, H, W)" if self.NDIM == 4 else "(N, F)")
        self.output_shape(x.shape[1:])
        training = self.batch_statistics(training)
        if training:
            if x.size // self.num_features < 2:
                raise ShapeError(
                    f"{self!r} in training needs more than one value per channel, got a "
                    f"batch of shape {x.shape}: the variance of one value is 0 and its "
                    "gradient meaningless (use a larger batch, or drop_last)"
                )
            mean, var, m = self.moments(x)  # (C,), (C,), values per channel
            self.update_running(mean, var, m)
        else:
            mean, var, m = self.running_mean, self.running_var, None
        std = np.sqrt(self._per_channel(var, x.dtype) + x.dtype.type(self.eps))  # (1, C, 1, 1)
        xhat = (x - self._per_channel(mean, x.dtype)) / std
        self.cache = (xhat, std, training, m)
        gamma = self._per_channel(self.gamma.data, x.dtype)
        return gamma * xhat + self._per_channel(self.beta.data, x.dtype)

    def update_running(self, mean, var, m):
        """Move the running statistics towards a batch's mean and biased var (m values each)."""
        r = self.momentum
        self.running_mean = ((1 - r) * self.running_mean + r * mean).astype(self.running_mean.dtype)
        self.running_var = ((1 - r) * self.running_var + r * var * m / (m - 1)).astype(
            self.running_var.dtype
        )

    def backward(self, dout, input_grad=True):
        xhat, std, training, m = self.saved()
        dbeta, dgamma = self.sums(dout, xhat)  # (C,) each
        self.beta.grad = dbeta.astype(self.beta.data.dtype, copy=False)
        self.gamma.grad = dgamma.astype(self.gamma.data.dtype, copy=False)
        if not input_grad:
            return None
        scale = self._per_channel(self.gamma.data, dout.dtype) / std  # gamma / std
        if not training:
            return scale * dout
        shift = self._per_channel(dbeta, dout.dtype) + xhat * self._per_channel(dgamma, dout.dtype)
        return scale * (dout - shift / m)


def batchnorms(layers):
    """The BatchNorm layers among `layers` (a Sequential or a list of layers) and inside the
    blocks they hold (layers.nested.walk), in order."""
    return [layer for layer in leaves(layers) if isinstance(layer, _BatchNorm)]


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of each channel of a feature map, statistics over (N, H, W).

    Shape:
        x:   (N, C, H, W)
        out: (N, C, H, W)
        gamma, beta (Parameters), running_mean, running_var (plain arrays): (C,)
    gamma starts at ones, beta at zeros, running_mean at zeros, running_var at ones.
    Training needs N*H*W > 1 (one value per channel has no variance), as in PyTorch.
    The rule and its backward are in _BatchNorm above; a conv before it wants bias=False.
    """

    AXES = (0, 2, 3)
    NDIM = 4


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of each feature of a dense layer's output, statistics over N.

    Shape:
        x:   (N, F)
        out: (N, F)
        gamma, beta (Parameters), running_mean, running_var (plain arrays): (F,)
    Training needs a batch of at least two. The rule and its backward are in _BatchNorm.
    """

    AXES = (0,)
    NDIM = 2
