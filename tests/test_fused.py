"""The fused kernels (kernels/fused.py) compute what the layers compute one by one."""

import naive
import numba
import numpy as np
import pytest

import minicnn
from minicnn import kernels


def padded(Y, extra, fill):
    """Y (F, N, H, W) inside a contiguous (F, N, H, W + extra) array, the rest set to fill."""
    F, N, H, W = Y.shape
    Yr = np.full((F, N, H, W + extra), fill, dtype=Y.dtype)
    Yr[..., :W] = Y
    return Yr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [0, 2])  # rows as wide as the output, or padded (stride 1)
@pytest.mark.parametrize(
    "shape, pool, stride",
    [
        ((4, 3, 8, 8), 2, 2),
        ((3, 2, 7, 9), 2, 2),  # odd sizes: floor rule
        ((2, 3, 9, 8), 3, 2),  # overlapping windows
    ],
)
def test_bias_relu_pool_kernels_match_reference(shape, pool, stride, dtype, extra):
    F, N, H, W = shape
    rng = np.random.default_rng(0)
    Y = (rng.permutation(F * N * H * W).reshape(shape) - F * N * H * W / 2).astype(dtype)
    Yr = padded(Y, extra, 1e6)  # the unused columns must not win a window
    b = rng.standard_normal(F).astype(dtype)
    ones = np.ones(F, dtype)
    z = np.maximum(Y.transpose(1, 0, 2, 3) + b[:, None, None], 0)  # (N, F, H, W)
    ref_out, ref_backward = naive.maxpool(z, pool, stride)
    out = np.empty(ref_out.shape, dtype=dtype)
    argmax = np.empty(out.shape, dtype=np.int32)
    kernels.fused.bias_relu_pool_forward(Yr, 0, W, ones, b, pool, stride, out, argmax)
    np.testing.assert_array_equal(out, ref_out.astype(dtype))
    if pool == stride == 2:
        out2, argmax2 = np.empty_like(out), np.empty_like(argmax)
        kernels.fused.bias_relu_pool2_forward(Yr, 0, W, ones, b, out2, argmax2)
        np.testing.assert_array_equal(out2, out)
        np.testing.assert_array_equal(argmax2, argmax)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dz = ref_backward(dout) * (z > 0)  # through the pool, then through ReLU
    expected = padded(dz.transpose(1, 0, 2, 3), extra, 0)  # zeros in the unused columns
    dY = np.full(Yr.shape, np.nan, dtype=dtype)
    db = np.empty((N, F), dtype=dtype)
    kernels.fused.bias_relu_pool_backward(dout, out, argmax, W, dY, 0, db)
    np.testing.assert_allclose(dY, expected, rtol=1e-6)
    np.testing.assert_allclose(db.sum(0), dz.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    if pool == stride == 2:
        dY2 = np.full(Yr.shape, np.nan, dtype=dtype)
        db2 = np.empty((N, F), dtype=dtype)
        kernels.fused.bias_relu_pool2_backward(dout, out, argmax, W, dY2, 0, db2)
        np.testing.assert_array_equal(dY2, dY)
        np.testing.assert_allclose(db2, db, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [0, 3])
def test_bias_relu_kernels_match_reference(dtype, extra):
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((3, 2, 5, 4)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    z = Y.transpose(1, 0, 2, 3) + b[:, None, None]
    out = np.empty(z.shape, dtype=dtype)
    kernels.fused.bias_relu_forward(padded(Y, extra, np.nan), 0, 4, np.ones(3, dtype), b, out)
    np.testing.assert_array_equal(out, np.maximum(z, 0))
    dout = rng.standard_normal(z.shape).astype(dtype)
    dY = np.full((3, 2, 5, 4 + extra), np.nan, dtype=dtype)
    db = np.empty((2, 3), dtype=dtype)
    kernels.fused.bias_relu_backward(dout, out, 4, dY, 0, db)
    expected = padded((dout * (z > 0)).transpose(1, 0, 2, 3), extra, 0)
    np.testing.assert_array_equal(dY, expected)
    np.testing.assert_allclose(db.sum(0), (dout * (z > 0)).sum(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [0, 3])
def test_bias_kernels_without_relu_match_reference(dtype, extra):
    """BatchNorm's scale and shift alone (no ReLU after it), images n0.. of the batch."""
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    scale, shift = rng.uniform(0.5, 2, 3).astype(dtype), rng.standard_normal(3).astype(dtype)
    Yr, n0 = padded(Y, extra, np.nan), 1
    out = np.full((3, 3, 5, 6), np.nan, dtype=dtype)
    kernels.fused.bias_forward(Yr, n0, 6, scale, shift, out)
    np.testing.assert_array_equal(out, naive.scale_shift(Y, 6, scale, shift)[n0:])
    assert out.dtype == dtype
    dout = rng.standard_normal((3, 3, 5, 6)).astype(dtype)
    dY, db = np.full(Yr.shape, np.nan, dtype=dtype), np.empty((3, 3), dtype=dtype)
    kernels.fused.bias_backward(dout, 6, dY, n0, db)
    expected = np.full(Yr.shape, np.nan, dtype=dtype)  # image 0 left alone
    expected[:, n0:] = padded(dout.transpose(1, 0, 2, 3), extra, 0)
    np.testing.assert_array_equal(dY, expected)
    np.testing.assert_allclose(db, dout.sum(axis=(2, 3), dtype=np.float64), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_place", [False, True], ids=["new", "in_place"])
def test_add_relu_kernels_match_reference(dtype, in_place):
    """relu(z + skip) and dout * (out > 0), bit for bit, with sums of exactly 0, a -0.0 and a
    NaN (kept, as np.maximum keeps it); written over z when in place."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    skip = rng.standard_normal(z.shape).astype(dtype)
    skip[0, 0, 0, :2] = -z[0, 0, 0, :2]  # sums of exactly zero: ReLU's kink
    z[0, 0, 1, 0], skip[0, 0, 1, 0] = -0.0, -0.0
    z[1, 2, 3, 4] = np.nan
    expected, mask = naive.add_relu(z, skip)
    out = z.copy() if in_place else np.full(z.shape, 7, dtype)
    kernels.fused.add_relu_forward((out if in_place else z).reshape(-1), skip.reshape(-1),
                                   out.reshape(-1))  # fmt: skip
    np.testing.assert_array_equal(out, expected)  # NaN where expected has NaN
    assert np.isnan(out[1, 2, 3, 4]) and not mask[0, 0, 0, :2].any()
    dout = rng.standard_normal(z.shape).astype(dtype)
    dz = np.full(z.shape, np.nan, dtype)
    kernels.fused.add_relu_backward(dout.reshape(-1), out.reshape(-1), dz.reshape(-1))
    np.testing.assert_array_equal(dz, dout * mask)


@pytest.mark.parametrize("pool", [None, 2, 3])
def test_fused_kernels_take_a_slice_of_the_batch_by_its_offset(pool):
    """Images n0.. of Y (dY) go with out, dout, argmax of those images; the rest untouched."""
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((3, 4, 6, 6))
    ones, b, n0 = np.ones(3), rng.standard_normal(3), 1
    shape = (4, 3, 6, 6) if pool is None else (4, 3, 6 // pool, 6 // pool)
    full, part = np.empty(shape), np.empty((3, *shape[1:]))
    am_full, am_part = np.empty(shape, np.int32), np.empty(part.shape, np.int32)
    if pool is None:
        forward = kernels.fused.bias_relu_forward
        forward(Y, 0, 6, ones, b, full), forward(Y, n0, 6, ones, b, part)
    elif pool == 2:
        forward = kernels.fused.bias_relu_pool2_forward
        forward(Y, 0, 6, ones, b, full, am_full), forward(Y, n0, 6, ones, b, part, am_part)
    else:
        forward = kernels.fused.bias_relu_pool_forward
        forward(Y, 0, 6, ones, b, 3, 3, full, am_full)
        forward(Y, n0, 6, ones, b, 3, 3, part, am_part)
    np.testing.assert_array_equal(part, full[n0:])
    dout = rng.standard_normal(part.shape)
    if pool is None:
        backward = kernels.fused.bias_relu_backward
        args = (dout, part, 6)
    else:
        backward = kernels.fused.bias_relu_pool2_backward if pool == 2 else (
            kernels.fused.bias_relu_pool_backward)  # fmt: skip
        args = (dout, part, am_part, 6)
    dY, db = np.full(Y.shape, np.nan), np.empty((3, 3))
    backward(*args, dY, n0, db)
    alone, db_expected = np.full((3, 3, 6, 6), np.nan), np.empty((3, 3))
    backward(*args, alone, 0, db_expected)  # the same images, as a batch of their own
    ref = np.full(Y.shape, np.nan)
    ref[:, n0:] = alone
    np.testing.assert_array_equal(dY, ref)  # image 0 of dY left alone (NaN)
    np.testing.assert_array_equal(db, db_expected)


@pytest.mark.parametrize("kernel", ["bias_relu_pool_forward", "bias_relu_pool2_forward"])
def test_pool_kernels_pick_the_first_of_tied_maxima(kernel):
    Y = np.zeros((1, 1, 2, 2))
    Y[0, 0] = [[1.0, 3.0], [3.0, 3.0]]
    out, argmax = np.empty((1, 1, 1, 1)), np.empty((1, 1, 1, 1), np.int32)
    ab = (Y, 0, 2, np.ones(1), np.zeros(1))
    args = ab + (2, 2) if kernel == "bias_relu_pool_forward" else ab
    getattr(kernels.fused, kernel)(*args, out, argmax)
    assert out[0, 0, 0, 0] == 3.0 and argmax[0, 0, 0, 0] == 1  # (0, 1), not (1, 0) or (1, 1)


@pytest.mark.parametrize("kernel", ["bias_relu_pool_forward", "bias_relu_pool2_forward"])
def test_pool_kernels_compare_after_the_bias_like_the_layers_do(kernel):
    """0.5 + 2**24 and 1.0 + 2**24 round to the same float32: a tie, as MaxPool2D sees it."""
    Y = np.array([[[[0.5, 1.0], [0.0, 0.0]]]], np.float32)
    b = np.array([2.0**24], np.float32)
    out, argmax = np.empty((1, 1, 1, 1), np.float32), np.empty((1, 1, 1, 1), np.int32)
    ab = (Y, 0, 2, np.ones(1, np.float32), b)
    args = ab + (2, 2) if kernel == "bias_relu_pool_forward" else ab
    getattr(kernels.fused, kernel)(*args, out, argmax)
    pool = minicnn.MaxPool2D(2)
    expected = pool.forward(np.maximum(Y + b[:, None, None], 0))
    dx = pool.backward(np.ones_like(expected))
    assert out[0, 0, 0, 0] == expected[0, 0, 0, 0]
    assert argmax[0, 0, 0, 0] == np.flatnonzero(dx[0, 0]) == 0  # the first of the tied pair


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="inspects compiled code")
def test_fused_kernels_do_no_float64_arithmetic_on_float32():
    """No silent upcast (a bare 0 in a select makes it float64): no fpext in the float32 code."""
    f32 = np.float32
    Y, b = np.ones((2, 1, 4, 6), f32), np.zeros(2, f32)
    out, am, db = (
        np.empty((1, 2, 2, 2), f32),
        np.empty((1, 2, 2, 2), np.int32),
        np.empty((1, 2), f32),
    )
    calls = {
        "bias_relu_pool2_forward": (Y, 0, 4, b, b, out, am),
        "bias_relu_pool2_backward": (out, out, am, 4, Y, 0, db),
        "bias_relu_pool_forward": (Y, 0, 4, b, b, 2, 2, out, am),
        "bias_relu_pool_backward": (out, out, am, 4, Y, 0, db),
        "bias_relu_forward": (Y, 0, 4, b, b, np.empty((1, 2, 4, 4), f32)),
        "bias_relu_backward": (np.ones((1, 2, 4, 4), f32), np.ones((1, 2, 4, 4), f32), 4, Y, 0, db),
        "bias_forward": (Y, 0, 4, b, b, np.empty((1, 2, 4, 4), f32)),
        "bias_backward": (np.ones((1, 2, 4, 4), f32), 4, Y, 0, db),
        "add_relu_forward": (Y.reshape(-1), Y.reshape(-1), Y.reshape(-1)),
        "add_relu_backward": (Y.reshape(-1), Y.reshape(-1), Y.reshape(-1)),
    }
    for name, args in calls.items():
        # compiled afresh: the LLVM IR of code loaded from Numba's cache cannot be inspected
        kernel = numba.njit(nogil=True)(getattr(kernels.fused, name).py_func)
        kernel(*args)
        ir = kernel.inspect_llvm(kernel.signatures[0])
        assert "fpext" not in ir and " double " not in ir, name


def test_conv2d_matches_direct_convolution():
    rng = np.random.default_rng(2)
    for stride, padding, pad in [(1, "same", 1), (2, 0, 0), (2, 2, 2)]:
        layer = minicnn.Conv2D(3, 5, 3, stride=stride, padding=padding, rng=3)
        layer.b.data[:] = rng.standard_normal(5)
        x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
        expected = naive.conv2d(x, layer.W.data, layer.b.data, stride, pad)
        np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-4, atol=1e-5)


def test_plan_groups_conv_relu_pool():
    steps = minicnn.fast.plan(list(minicnn.models.paper13()))
    kinds = [type(s).__name__ for _, s in steps]
    assert kinds[:5] == ["ConvBlock"] * 5
    assert [len(s.layers) for _, s in steps[:5]] == [3, 3, 3, 2, 2]
    assert [i for i, _ in steps[:6]] == [0, 3, 6, 9, 11, 13]
