"""Conv2D -> BatchNorm2D [-> ReLU [-> MaxPool2D]] as one step: the fast engine's BatchNorm.

It computes exactly the composition it replaces,

    out = maxpool(relu(gamma * (conv(x) - mean) / std + beta))
    out = gamma * (conv(x) - mean) / std + beta          (no ReLU: activation None)

with BatchNorm's per-channel affine map z = Y * scale + shift (scale = gamma / std,
shift = beta - mean * scale) applied by the same fused ReLU / max-pool kernels as
ConvBlock (kernels/fused.py), or without ReLU by their twins bias_forward / bias_backward
(the last convolution of a residual branch, and a projection shortcut, have no ReLU after
their BatchNorm; BatchNorm2D on its own makes some seven passes over the activations and
five new arrays of their size each way: moments, x - mean, / std, * gamma, + beta, and
backward its sums and dx):

- evaluation: mean and std are the running statistics, so BatchNorm is folded into the
  convolution: weights W * scale, bias shift. The step then costs what a ConvBlock costs,
  chunk by chunk, and a BatchNorm network infers as fast as one without. The folded
  weights are kept from call to call while W and BatchNorm's arrays are unchanged (memo.py).
- training: the statistics are the batch's, known only once the whole product is there. So
  each chunk's product is kept, channel-major (F, N, H, Wr), and while it is still in
  cache kernels/batchnorm.py computes its mean and variance per channel; pooled() combines
  the chunks' (in a fixed order). Then the fused kernels apply scale, shift, ReLU and pool.
  Backward: the fused kernels give dZ (without ReLU: dout itself, channel-major, in the
  same pass as its sums), and each chunk of the convolution's backward gets
  its gradient of the product from kernels/batchnorm.py (the full batch-statistics
  backward of BatchNorm2D) straight into its buffer.
The running statistics move exactly as BatchNorm2D moves them (BatchNorm2D.update_running).
When data-parallel training synchronises BatchNorm, the layer's moments and sums combine
each process's part into the whole global batch's (minicnn.distributed); whole_batch() asks
them to combine the statistics and sums computed here, so the block syncs as the layer does.
A BatchNorm whose statistics are frozen (batch_statistics() says so: transfer learning)
takes the evaluation path in training too; a frozen W gets no gradient (ChunkedConv).
Only a Conv2D without bias is fused (BatchNorm's beta is the bias). Without ReLU the block
keeps no reference to its output (nothing in its backward reads it), so a residual block
may add its shortcut into that array in place (fast/residual.py).
tests/test_fast.py holds outputs, every gradient and the running statistics to the
reference layers, with and without ReLU and pool, in training and in evaluation, float64
within 1e-12 and float32 within rounding, at 1 and 2 threads and with chunks of one image;
tests/test_residual_fast.py the same inside residual blocks, frozen and with synced statistics.
"""

import numpy as np

import minicnn.kernels as kernels

from ..layers.base import ShapeError
from . import threads
from .blocks import relu_pool_backward, relu_pool_forward, shapes_of
from .memo import Memo
from .winograd import conv_matmul


class ConvBNBlock:
    """Conv2D(bias=False) + BatchNorm2D, optionally + ReLU, optionally then + MaxPool2D, fused.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), H' = conv then pool output size.
    Equals: pool(relu(bn(conv(x)))) (or bn(conv(x)) with relu None) and their backwards,
    in training and in evaluation.
    """

    def __init__(self, conv, bn, relu=None, pool=None):
        if pool is not None and relu is None:
            raise ValueError("ConvBNBlock fuses a MaxPool2D only after a ReLU")
        self.conv, self.bn, self.relu, self.pool = conv, bn, relu, pool
        self.layers = [conv, bn] + [lay for lay in (relu, pool) if lay is not None]
        self.shapes, self.memo = {}, Memo()

    def parameters(self):
        return self.conv.parameters() + self.bn.parameters()

    def forward(self, x, training=False):
        shapes = shapes_of(self, x)
        out = np.empty((len(x), *shapes[-1]), dtype=x.dtype)
        self._argmax = np.empty(out.shape, np.int32) if self.pool is not None else None
        batch_statistics = self.bn.batch_statistics(training)  # frozen: running statistics
        # ReLU's backward reads its mask from out; without ReLU nothing does: keep no reference
        self._out, self._training = (out if self.relu is not None else None), batch_statistics
        self.matmul = conv_matmul(self.conv, x.shape)  # im2col or Winograd, for this shape
        if batch_statistics:
            self._forward_training(x, out, shapes[0])
        else:
            self._forward_folded(x, out, training)
        return out

    def _argmax_of(self, a, b):
        return self._argmax[a:b] if self._argmax is not None else None

    def _epilogue(self, Y, n0, W, scale, shift, out, argmax):
        """out = pool(relu(Y * scale + shift)), or Y * scale + shift without ReLU."""
        if self.relu is None:
            kernels.fused.bias_forward(Y, n0, W, scale, shift, out)
        else:
            relu_pool_forward(self.pool, Y, n0, W, scale, shift, out, argmax)

    def _epilogue_backward(self, dout, out, argmax, W, dZ, n0, dshift_partial):
        """dZ (F, N, H, Wr), images n0.., the gradient w.r.t. z = Y * scale + shift; per-image
        sums of it (dbeta's pieces)."""
        if self.relu is None:
            kernels.fused.bias_backward(dout, W, dZ, n0, dshift_partial)
        else:
            relu_pool_backward(self.pool, dout, out, argmax, W, dZ, n0, dshift_partial)

    def _out_of(self, a, b):
        return self._out[a:b] if self._out is not None else None

    def _forward_folded(self, x, out, training):
        """Running statistics: BatchNorm folded into the convolution's weights and bias; in
        evaluation the folded weights are kept while their sources are unchanged (memo.py)."""
        bn, dtype = self.bn, x.dtype
        if training:  # a frozen BatchNorm in training: W may change at every step
            weights, scale, std, shift = self._fold(dtype)
        else:
            sources = [self.conv.W.data, bn.gamma.data, bn.beta.data, bn.running_mean,
                       bn.running_var]  # fmt: skip
            key = (type(self.matmul), dtype, bn.eps)
            weights, scale, std, shift = self.memo.get(key, sources, lambda: self._fold(dtype))
        ones = np.ones(self.conv.out_channels, dtype)

        def epilogue(n0, n1, Y4, W_out):
            self._epilogue(Y4, 0, W_out, ones, shift, out[n0:n1], self._argmax_of(n0, n1))

        self.matmul.forward(x, epilogue, weights)
        self._folded = (scale, std)

    def _fold(self, dtype):
        """(weights as self.matmul uses them, scale, std, shift) of z = (W * scale) x + shift."""
        bn, F = self.bn, self.conv.out_channels
        std = np.sqrt(bn.running_var.astype(dtype) + dtype.type(bn.eps))
        scale = bn.gamma.data.astype(dtype) / std
        shift = bn.beta.data.astype(dtype) - bn.running_mean.astype(dtype) * scale
        W2 = self.conv.W.data.reshape(F, -1).astype(dtype, copy=False) * scale[:, None]
        return self.matmul.prepare(dtype, W2), scale, std, shift  # W2 (F, C*k*k)

    def _forward_training(self, x, out, conv_shape):
        bn, dtype = self.bn, x.dtype
        N, (F, H_out, W_out) = len(x), conv_shape
        m = N * H_out * W_out
        if m < 2:
            raise ShapeError(
                f"{bn!r} in training needs more than one value per channel, got {m} from a "
                f"batch of {N} images of {H_out}x{W_out}"
            )
        Wr = self.matmul.row_width(x.shape[3], W_out)
        Y = np.empty((F, N, H_out, Wr), dtype=dtype)  # the whole product, channel-major
        moments = {}  # each chunk's statistics, by its first image

        def keep(n0, n1, Y4, W_out):  # while the chunk is in cache: keep it, and its moments
            Y[:, n0:n1] = Y4
            mean, var = np.empty(F), np.empty(F)  # float64
            kernels.batchnorm.channel_stats(Y4, W_out, mean, var)
            moments[n0] = (n1 - n0, mean, var)

        self.matmul.forward(x, keep)
        mean, var = pooled([moments[n0] for n0 in sorted(moments)])
        mean, var, m = whole_batch(bn.moments, mean, var, m)  # global under sync_batchnorm
        bn.update_running(mean, var, m)
        mean, var = mean.astype(dtype), var.astype(dtype)
        std = np.sqrt(var + dtype.type(bn.eps))
        scale = bn.gamma.data.astype(dtype) / std
        shift = bn.beta.data.astype(dtype) - mean * scale
        threads.parallel_for(
            lambda a, b: self._epilogue(Y, a, W_out, scale, shift, out[a:b], self._argmax_of(a, b)),
            N,
        )
        self._batch = (Y, W_out, mean, std, m)

    def backward(self, dout, input_grad=True):
        dout = np.ascontiguousarray(dout)
        if self._training:
            return self._backward_training(dout, input_grad)
        return self._backward_folded(dout, input_grad)

    def _backward_training(self, dout, input_grad):
        bn = self.bn
        Y, W_out, mean, std, m = self._batch
        F, N = Y.shape[:2]
        dZ = np.empty_like(Y)  # gradient w.r.t. BatchNorm's output, then w.r.t. Y
        dbeta_partial = np.empty((N, F), dtype=dout.dtype)
        threads.parallel_for(
            lambda a, b: self._epilogue_backward(
                dout[a:b], self._out_of(a, b), self._argmax_of(a, b), W_out, dZ, a,
                dbeta_partial[a:b],
            ),
            N,
        )  # fmt: skip
        dbeta = dbeta_partial.sum(axis=0)
        dgamma = np.empty(F, dtype=dout.dtype)
        gamma = bn.gamma.data.astype(dout.dtype)
        threads.parallel_for(
            lambda a, b: kernels.batchnorm.dgamma_sums(
                dZ[a:b], Y[a:b], W_out, mean[a:b], std[a:b], dgamma[a:b]
            ),
            F,
        )
        dbeta, dgamma = whole_batch(bn.sums, dbeta, dgamma)  # global under sync_batchnorm
        set_grads(bn, dgamma, dbeta)

        def fill_dY(n0, n1, dY4, W_out):  # BatchNorm's backward, one chunk, into its buffer
            kernels.batchnorm.batchnorm_backward(
                dZ, Y, n0, W_out, mean, std, gamma, dbeta, dgamma, m, dY4
            )

        return self.matmul.backward(fill_dY, input_grad)

    def _backward_folded(self, dout, input_grad):
        """Evaluation: z = (W * scale) x + shift, so dW = scale * dW_z, dgamma from both."""
        bn, conv = self.bn, self.conv
        scale, std = self._folded
        F = conv.out_channels
        dbeta_partial = np.empty((len(dout), F), dtype=dout.dtype)

        def fill_dY(n0, n1, dY4, W_out):
            self._epilogue_backward(dout[n0:n1], self._out_of(n0, n1), self._argmax_of(n0, n1),
                                    W_out, dY4, 0, dbeta_partial[n0:n1])  # fmt: skip

        # dgamma needs the product's weight gradient too, even with W frozen
        weight_grad = conv.W.trainable or bn.gamma.trainable
        dx = self.matmul.backward(fill_dY, input_grad, weight_grad=weight_grad)
        dbeta = dbeta_partial.sum(axis=0)
        dgamma = np.zeros_like(dbeta)  # (gamma frozen, and not needed, without weight_grad)
        if weight_grad:
            dW_z = self.matmul.dW.reshape(F, -1)  # d/dW of the product W @ cols (unscaled)
            W = conv.W.data.reshape(F, -1).astype(dout.dtype)
            mean = bn.running_mean.astype(dout.dtype)
            # dgamma = sum(dz * xhat), xhat = (W @ cols - mean) / std, and sum(dz * W @ cols)
            # is the row-wise dot product of W with dW_z
            dgamma = ((W * dW_z).sum(axis=1) - mean * dbeta) / std
        if conv.W.trainable:
            dW = (dW_z * scale[:, None]).reshape(conv.W.data.shape)
            conv.W.grad = dW.astype(conv.W.data.dtype)
        dbeta, dgamma = whole_batch(bn.sums, dbeta, dgamma)  # global under sync_batchnorm
        set_grads(bn, dgamma, dbeta)
        return dx


def whole_batch(method, *local):
    """The result of a BatchNorm's moments or sums for the whole batch, from this process's
    `local` one: as is, unless data-parallel training made the method combine the parts of
    all processes (then it has .combine(*local); minicnn.distributed.sync_batchnorm)."""
    combine = getattr(method, "combine", None)
    return local if combine is None else combine(*local)


def set_grads(bn, dgamma, dbeta):
    """gamma.grad and beta.grad of a BatchNorm2D, each unless it is frozen."""
    if bn.gamma.trainable:
        bn.gamma.grad = dgamma.astype(bn.gamma.data.dtype, copy=False)
    if bn.beta.trainable:
        bn.beta.grad = dbeta.astype(bn.beta.data.dtype, copy=False)


def pooled(moments):
    """The mean and biased variance (F,) of the union of groups, from (count, mean, var) of
    each: mean = sum m_i mean_i / M, var = sum m_i (var_i + (mean_i - mean)^2) / M."""
    counts = np.array([[count] for count, _, _ in moments], dtype=np.float64)  # (k, 1)
    means = np.array([mean for _, mean, _ in moments])  # (k, F)
    total = counts.sum()
    mean = (counts * means).sum(axis=0) / total
    var = (counts * (np.array([var for _, _, var in moments]) + (means - mean) ** 2)).sum(axis=0)
    return mean, var / total
