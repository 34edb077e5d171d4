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


def test_adamw_two_steps_by_hand():
    """torch.optim.AdamW: p *= 1 - lr * wd, then the Adam step with the plain gradient."""
    p = minicnn.Parameter(np.array([0.5, -2.0]))
    opt = minicnn.AdamW([p], lr=0.01, weight_decay=0.1)
    value, m, v = np.array([0.5, -2.0]), 0.0, 0.0
    for t, g in enumerate([np.array([1.0, 0.2]), np.array([-0.5, 0.4])], start=1):
        p.grad = g
        opt.step()
        value = value * (1 - 0.01 * 0.1)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        value = value - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        np.testing.assert_allclose(p.data, value, rtol=1e-12)
    assert opt.t == 2 and opt.weight_decay == 0.1
    assert minicnn.AdamW([p]).weight_decay == 1e-2  # PyTorch's default


def test_adamw_decay_is_not_seen_by_the_moments():
    """With g = 0 AdamW only shrinks p (Adam with L2 would move m and v)."""
    p = minicnn.Parameter(np.array([2.0]))
    p.grad = np.array([0.0])
    opt = minicnn.AdamW([p], lr=0.1, weight_decay=0.5)
    opt.step()
    assert p.data[0] == pytest.approx(2.0 * (1 - 0.05), rel=1e-12)
    assert opt.m[0][0] == 0.0 and opt.v[0][0] == 0.0


def test_parameter_groups_and_no_decay():
    a, b, c = (minicnn.Parameter(np.array([1.0])) for _ in range(3))
    for q in (a, b, c):
        q.grad = np.array([0.0])
    opt = minicnn.AdamW(
        [{"params": [a, b]}, {"params": [c], "weight_decay": 0.3}],
        lr=0.1,
        weight_decay=0.5,
        no_decay=[b],
    )
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0, 0.3]
    assert [g["params"] for g in opt.param_groups] == [[a], [b], [c]]
    assert opt.parameters == [a, b, c]
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0], c.data[0]], [0.95, 1.0, 0.97], rtol=1e-12)
    # Adam: the same groups, as an L2 term in the gradient (g = 0 + wd * p, first step -lr)
    x, y = minicnn.Parameter(np.array([1.0])), minicnn.Parameter(np.array([1.0]))
    x.grad, y.grad = np.array([0.0]), np.array([0.0])
    minicnn.Adam([x, y], lr=0.1, weight_decay=0.5, no_decay=[y]).step()
    assert x.data[0] == pytest.approx(0.9, rel=1e-6) and y.data[0] == 1.0
    with pytest.raises(ValueError, match="more than one parameter group"):
        minicnn.Adam([{"params": [a]}, {"params": [a]}])
    with pytest.raises(ValueError, match=r'keys "params" and optionally "weight_decay".*lr'):
        minicnn.Adam([{"params": [a], "lr": 0.1}])


def test_biases_and_norms_are_the_one_dimensional_parameters():
    conv, bn, head = minicnn.Conv2D(3, 4, 3), minicnn.BatchNorm2D(4), minicnn.Dense(4, 2)
    model = minicnn.Sequential([conv, bn, minicnn.ReLU(), minicnn.GlobalAvgPool2D(), head])
    skip = minicnn.optim.biases_and_norms(model.parameters())
    assert skip == [conv.b, bn.gamma, bn.beta, head.b]
    opt = minicnn.AdamW(model.parameters(), no_decay=skip)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(model.parameters())


def test_optimizer_state_must_fit_its_parameters():
    p, q = minicnn.Parameter(np.ones(2)), minicnn.Parameter(np.ones(3))
    state = minicnn.Adam([p, q]).state_dict()
    with pytest.raises(ValueError, match="does not fit this optimizer's 2 parameters"):
        minicnn.Adam([q, p]).load_state_dict(state)
    every = [minicnn.SGD([p], lr=0.1), minicnn.Adam([p]), minicnn.AdamW([p])]
    for opt in every:  # a settable learning rate, as schedules need
        opt.lr = 0.25
        assert opt.lr == 0.25
