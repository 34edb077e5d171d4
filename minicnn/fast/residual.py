"""Residual on the fast engine: its branch and shortcut as fast steps, the sum and ReLU fused.

Equals minicnn.layers.Residual,

    out = relu(branch(x) + shortcut(x))        (or without relu: activation None)

and its backward, g = dout * (out > 0) down both paths, dx = branch'(g) + shortcut'(g):
- the branch and the shortcut are planned like a model's layers (fast.plan): a branch's
  Conv2D(bias=False) -> BatchNorm2D -> ReLU is a ConvBNBlock, its last Conv2D(bias=False)
  -> BatchNorm2D a ConvBNBlock without ReLU, a projection shortcut (a 1x1 Conv2D(bias=False)
  -> BatchNorm2D) one too, a Conv2D alone a FastConv, and so on;
- the sum and the ReLU are one pass (kernels/fused.py: add_relu_forward), written into the
  branch's output array when the branch's last step keeps no reference to it
  (writable_output), else into a new one. No mask is stored: ReLU's backward reads it
  from the output, which the block keeps (out > 0 exactly where the sum is);
- backward: g = dout * (out > 0) in one pass (add_relu_backward), into a new array since
  dout is the caller's. Both paths read g and no step writes into the gradient it is given
  (the layers' rule), so they share it without a copy; with no activation g is dout
  itself. dx = the branch's dx + the shortcut's, added into the branch's dx when its first
  step made that array for this call (new_input_grad).
The block computes the same sum and the same maximum as the layer, so its own part is
exact: the fast steps inside account for all rounding differences. Tests:
tests/test_residual_fast.py holds outputs, every gradient and BatchNorm's running
statistics to the reference layers (float64 within 1e-12, float32 within rounding; at 1
and 2 threads, with chunks of one image, in training and in evaluation, frozen and with
synced BatchNorm) and the steps to the promises that make writing in place safe;
tests/test_fast.py does the same over paper_res; tests/test_fused.py holds the kernels to
their NumPy twins (tests/naive.py).
"""

import numpy as np

import minicnn.kernels as kernels

from . import threads
from .batchnorm import ConvBNBlock
from .blocks import ConvBlock, FastConv
from .memo import layers_key


def clear_fused(layers, steps):
    """Layers that a fused step computes keep no values of an earlier call of their own."""
    for i, step in steps:
        if step is not layers[i]:
            for layer in step.layers:
                layer.cache = None


def writable_output(step):
    """True when step's forward returns a new array that neither it nor its backward keeps
    (so the block may write the sum into it): FastConv, and ConvBNBlock without ReLU (with
    ReLU it reads its mask back from its output). Other steps make no such promise."""
    return type(step) is FastConv or (type(step) is ConvBNBlock and step.relu is None)


def new_input_grad(step):
    """True when step's backward returns an array it allocated for this call and does not
    keep (a convolution step's dx, ChunkedConv.backward), so the block may add into it."""
    return type(step) in (ConvBlock, ConvBNBlock, FastConv)


def _flat(a, n0, n1):
    """Images n0..n1-1 of a C-contiguous batch as one flat view."""
    return a[n0:n1].reshape(-1)


class FastResidual:
    """A Residual whose branch and shortcut are lists of (index, fast step) pairs, made by
    plan(layers) (fast.plan), and made again when the block's lists change.

    Shape: x (N, C, H, W) -> out (N, F, H', W'), the block's output shape.
    """

    def __init__(self, block, plan):
        self.block, self.layers = block, [block]
        self._plan, self._made_for = plan, None
        self._update()

    def _update(self):
        """Plan the branch and the shortcut, unless already planned for the same layers."""
        block = self.block
        made_for = (layers_key(block.branch), layers_key(block.shortcut or []))
        if made_for != self._made_for:
            self.branch = self._plan(block.branch)
            self.shortcut = block.shortcut and self._plan(block.shortcut)
            self._made_for = made_for

    def parameters(self):
        return self.block.parameters()

    def forward(self, x, training=False):
        self.block.output_shape(x.shape[1:])  # the layer's clear error on a mismatch
        self._update()
        clear_fused(self.block.branch, self.branch)  # no values of an earlier call of their own
        if self.shortcut is not None:
            clear_fused(self.block.shortcut, self.shortcut)
        z = x
        for _, step in self.branch:
            z = step.forward(z, training)  # (N, F, H', W')
        skip = x
        for _, step in self.shortcut or []:
            skip = step.forward(skip, training)
        skip = np.ascontiguousarray(skip)
        if writable_output(self.branch[-1][1]) and z.flags.c_contiguous and z.dtype == skip.dtype:
            out = z  # the sum goes where the branch's output was: no new array
        else:
            z = np.ascontiguousarray(z)
            out = np.empty(z.shape, np.result_type(z, skip))
        if self.block.activation == "relu":
            threads.parallel_for(
                lambda a, b: kernels.fused.add_relu_forward(
                    _flat(z, a, b), _flat(skip, a, b), _flat(out, a, b)
                ),
                len(z),
            )
            self._out = out  # backward's mask: out > 0
        else:
            np.add(z, skip, out=out)
            self._out = None
        return out

    def backward(self, dout, input_grad=True):
        dout = np.ascontiguousarray(dout)
        g = dout  # no activation: the sum hands dout to both paths
        if self._out is not None:
            g = np.empty(dout.shape, dout.dtype)  # dL/dz, z = branch + shortcut
            threads.parallel_for(
                lambda a, b: kernels.fused.add_relu_backward(
                    _flat(dout, a, b), _flat(self._out, a, b), _flat(g, a, b)
                ),
                len(g),
            )
        grads = [g, g]  # the identity shortcut's dx is g itself
        for i, steps in enumerate((self.branch, self.shortcut)):
            for k in reversed(range(len(steps or []))):
                grads[i] = steps[k][1].backward(grads[i], input_grad=input_grad or k > 0)
        if not input_grad:
            return None
        dx, dskip = grads
        if new_input_grad(self.branch[0][1]) and dx.dtype == np.result_type(dx, dskip):
            return np.add(dx, dskip, out=dx)
        return dx + dskip
