"""Each Numba kernel against its plain-NumPy reference (tests/naive.py), float32 and float64."""

import naive
import numpy as np
import pytest

from minicnn import kernels

CASES = [  # (N, C, H, W, k, stride, pad)
    (2, 3, 8, 8, 3, 1, 1),
    (1, 2, 7, 5, 3, 2, 0),
    (3, 4, 6, 9, 5, 1, 2),
    (2, 1, 5, 5, 1, 1, 0),
    (1, 3, 9, 7, 3, 2, 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, C, H, W, k, stride, pad", CASES)
def test_im2col_matches_reference(N, C, H, W, k, stride, pad, dtype):
    x = np.random.default_rng(0).standard_normal((N, C, H, W)).astype(dtype)
    H_out, W_out = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    cols = np.empty((C * k * k, N * H_out * W_out), dtype=dtype)
    kernels.im2col.im2col(x, k, k, stride, pad, H_out, W_out, cols)
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, naive.im2col(x, k, stride, pad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, C, H, W, k, stride, pad", CASES)
def test_col2im_matches_reference(N, C, H, W, k, stride, pad, dtype):
    H_out = (H + 2 * pad - k) // stride + 1
    W_out = (W + 2 * pad - k) // stride + 1
    cols = np.random.default_rng(1).standard_normal((C * k * k, N * H_out * W_out)).astype(dtype)
    dx = np.full((N, C, H, W), np.nan, dtype=dtype)  # the kernel must zero it first
    kernels.im2col.col2im(cols, k, k, stride, pad, dx)
    expected = naive.col2im(cols, N, C, H, W, k, stride, pad)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, pool, stride",
    [
        ((2, 3, 8, 8), 2, 2),
        ((1, 2, 7, 9), 2, 2),  # odd sizes: the last row/column is dropped
        ((2, 2, 9, 8), 3, 2),  # overlapping windows
        ((1, 1, 6, 6), 3, 1),
    ],
)
def test_maxpool_kernels_match_reference(shape, pool, stride, dtype):
    rng = np.random.default_rng(2)
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(dtype)  # no ties
    N, C, H, W = shape
    H_out, W_out = (H - pool) // stride + 1, (W - pool) // stride + 1
    out = np.empty((N, C, H_out, W_out), dtype=dtype)
    argmax = np.empty(out.shape, dtype=np.int32)
    kernels.pool.maxpool_forward(x, pool, stride, out, argmax)
    ref_out, ref_backward = naive.maxpool(x, pool, stride)
    np.testing.assert_array_equal(out, ref_out)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = np.full(shape, np.nan, dtype=dtype)
    kernels.pool.maxpool_backward(dout, argmax, dx)
    np.testing.assert_allclose(dx, ref_backward(dout), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_matches_reference(dtype):
    rng = np.random.default_rng(3)
    p = rng.standard_normal(50).astype(dtype)
    grads = [rng.standard_normal(50).astype(dtype) for _ in range(4)]
    expected = naive.adam(p, grads, 1e-2, 0.9, 0.999, 1e-8)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        kernels.adam.adam_step(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8, 0.0, t)
    assert p.dtype == dtype
    np.testing.assert_allclose(p, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "N, C, H, W, k, pad", [(2, 3, 8, 8, 3, 1), (1, 2, 7, 5, 3, 0), (2, 2, 6, 9, 5, 2)]
)
def test_stride1_shifted_im2col_and_col2im_match_reference(N, C, H, W, k, pad, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    H_out, W_out, Wp = H + 2 * pad - k + 1, W + 2 * pad - k + 1, W + 2 * pad
    cols = np.empty((C * k * k, N * H_out * Wp), dtype=dtype)
    kernels.im2col.im2col_s1(x, k, k, pad, H_out, cols)
    valid = cols.reshape(C * k * k, N, H_out, Wp)[:, :, :, :W_out].reshape(C * k * k, -1)
    np.testing.assert_array_equal(valid, naive.im2col(x, k, 1, pad))
    dcols = rng.standard_normal((C * k * k, N, H_out, Wp)).astype(dtype)
    dcols[:, :, :, W_out:] = 0  # the unused columns carry no gradient
    dx = np.full(x.shape, np.nan, dtype=dtype)
    kernels.im2col.col2im_s1(dcols.reshape(C * k * k, -1), k, k, pad, H_out, dx)
    expected = naive.col2im(dcols[:, :, :, :W_out].reshape(C * k * k, -1), N, C, H, W, k, 1, pad)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx, expected, rtol=tol, atol=tol)
