"""Adam and SGD against updates computed by hand."""

import numpy as np
import pytest

import minicnn


def test_adam_first_step_is_lr_times_sign():
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps).
    p = minicnn.Parameter(np.array([1.0, -2.0, 3.0]))
    p.grad = np.array([0.5, -4.0, 0.0])
    opt = minicnn.Adam([p], lr=0.1)
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1, -2.0 + 0.1, 3.0], rtol=1e-7)


def test_adam_three_steps_by_hand():
    p = minicnn.Parameter(np.array([0.5]))
    opt = minicnn.Adam([p], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    value, m, v = 0.5, 0.0, 0.0
    for t, g in enumerate([1.0, -0.5, 2.0], start=1):
        p.grad = np.array([g])
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        value -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        assert p.data[0] == pytest.approx(value, rel=1e-12)
    assert opt.t == 3


def test_adam_weight_decay_adds_l2_gradient():
    p = minicnn.Parameter(np.array([2.0]))
    p.grad = np.array([0.0])
    minicnn.Adam([p], lr=0.1, weight_decay=0.5).step()  # g = 0 + 0.5 * 2 > 0
    assert p.data[0] == pytest.approx(2.0 - 0.1, rel=1e-6)


def test_adam_keeps_float32():
    p = minicnn.Parameter(np.ones((2, 3), dtype=np.float32))
    p.grad = np.full((2, 3), 0.1, dtype=np.float32)
    minicnn.Adam([p], lr=0.5).step()
    assert p.data.dtype == np.float32
    np.testing.assert_allclose(p.data, 0.5, rtol=1e-6)


def test_sgd_plain_and_momentum():
    p = minicnn.Parameter(np.array([1.0]))
    opt = minicnn.SGD([p], lr=0.1)
    p.grad = np.array([2.0])
    opt.step()
    assert p.data[0] == pytest.approx(0.8)
    q = minicnn.Parameter(np.array([1.0]))
    opt = minicnn.SGD([q], lr=0.1, momentum=0.9)
    q.grad = np.array([1.0])
    opt.step()  # v = 1
    opt.step()  # v = 1.9
    assert q.data[0] == pytest.approx(1.0 - 0.1 - 0.19)


def test_adam_state_round_trip():
    p = minicnn.Parameter(np.array([1.0, 2.0]))
    opt = minicnn.Adam([p], lr=0.1)
    p.grad = np.array([1.0, -1.0])
    opt.step()
    state = opt.state_dict()
    q = minicnn.Parameter(p.data.copy())
    opt2 = minicnn.Adam([q], lr=0.1)
    opt2.load_state_dict(state)
    p.grad = q.grad = np.array([0.3, 0.7])
    opt.step()
    opt2.step()
    np.testing.assert_array_equal(p.data, q.data)
