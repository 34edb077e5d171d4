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


WINOGRAD_CASES = [  # (N, C, H, W, pad): even, odd and non-square sizes, padding 0 to 2
    (2, 3, 8, 8, 1),
    (1, 2, 7, 5, 1),
    (2, 2, 6, 9, 0),
    (1, 3, 5, 6, 2),
    (3, 1, 4, 4, 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N, C, H, W, pad", WINOGRAD_CASES)
def test_winograd_transforms_match_their_definitions(N, C, H, W, pad, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    H_out, W_out = H + 2 * pad - 2, W + 2 * pad - 2
    th, tw = (H_out + 1) // 2, (W_out + 1) // 2
    T = N * th * tw
    rows = np.full((16, C * T + 3), np.nan, dtype=dtype)  # a gap between the 16 matrices
    kernels.winograd.transform_input(x, pad, th, tw, rows)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    V = rows[:, : C * T].reshape(16, C, T)
    np.testing.assert_allclose(V, naive.winograd_input(x, pad), rtol=tol, atol=tol)
    assert np.isnan(rows[:, C * T :]).all()  # the gap is left alone
    M = rng.standard_normal((16, 4, N * th * tw)).astype(dtype)
    Y = np.full((4, N, H_out, W_out), np.nan, dtype=dtype)
    kernels.winograd.transform_output(M.reshape(16, -1), th, tw, Y)
    expected = naive.winograd_output(M, N, th, tw, H_out, W_out)
    np.testing.assert_allclose(Y, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("N, C, H, W, pad", WINOGRAD_CASES)
def test_winograd_adjoints_are_the_transposes_of_the_transforms(N, C, H, W, pad):
    """<T(a), b> = <a, T*(b)> for random a, b: the backward kernels are exact gradients."""
    rng = np.random.default_rng(6)
    H_out, W_out = H + 2 * pad - 2, W + 2 * pad - 2
    th, tw = (H_out + 1) // 2, (W_out + 1) // 2
    x = rng.standard_normal((N, C, H, W))
    dV = rng.standard_normal((16, C, N * th * tw))
    V = kernels.winograd.transform_input(x, pad, th, tw, np.empty((16, dV[0].size)))
    dx = kernels.winograd.transform_input_adjoint(
        dV.reshape(16, -1), pad, th, tw, np.full_like(x, np.nan)
    )
    np.testing.assert_allclose(np.vdot(V, dV), np.vdot(x, dx), rtol=1e-12)
    M = rng.standard_normal((16, 3, N * th * tw))
    dY = rng.standard_normal((3, N, H_out, W_out))
    Y = kernels.winograd.transform_output(M.reshape(16, -1), th, tw, np.empty_like(dY))
    dM = kernels.winograd.transform_output_adjoint(dY, th, tw, np.full((16, M[0].size), np.nan))
    np.testing.assert_allclose(np.vdot(Y, dY), np.vdot(M, dM), rtol=1e-12)


def test_winograd_weight_transform_and_its_adjoint():
    from minicnn.fast.winograd import transform_weights, transform_weights_adjoint

    rng = np.random.default_rng(7)
    W = rng.standard_normal((5, 3, 3, 3))
    U = transform_weights(W.reshape(5, -1), 3)
    np.testing.assert_allclose(U, naive.winograd_weights(W), rtol=1e-13, atol=1e-13)
    S = rng.standard_normal(U.shape)
    dW = transform_weights_adjoint(S)  # (F, C*9)
    np.testing.assert_allclose(np.vdot(U, S), np.vdot(W.reshape(5, -1), dW), rtol=1e-12)


@pytest.mark.parametrize("N, C, H, W, pad", WINOGRAD_CASES)
def test_winograd_convolution_equals_the_direct_one(N, C, H, W, pad):
    """The three steps together give naive.conv2d, in float64 to rounding."""
    from minicnn.fast.winograd import transform_weights

    rng = np.random.default_rng(8)
    x, Wt = rng.standard_normal((N, C, H, W)), rng.standard_normal((4, C, 3, 3))
    H_out, W_out = H + 2 * pad - 2, W + 2 * pad - 2
    th, tw = (H_out + 1) // 2, (W_out + 1) // 2
    V = kernels.winograd.transform_input(x, pad, th, tw, np.empty((16, C * N * th * tw)))
    M = transform_weights(Wt.reshape(4, -1), C) @ V.reshape(16, C, -1)
    Y = kernels.winograd.transform_output(M.reshape(16, -1), th, tw, np.empty((4, N, H_out, W_out)))
    expected = naive.conv2d(x, Wt, np.zeros(4), 1, pad)
    np.testing.assert_allclose(Y.transpose(1, 0, 2, 3), expected, rtol=1e-12, atol=1e-12)
