"""SGD, Adam and AdamW against updates computed by hand; the fused Adam step against the
NumPy lines (Adam(fast=False)) it replaces."""

import numpy as np
import pytest

import minicnn
from minicnn import kernels
from minicnn.fast import adam as fast_adam
from minicnn.gradcheck import rel_error

ENGINES = pytest.mark.parametrize("fast", [True, False], ids=["fused", "numpy"])


@ENGINES
def test_adam_first_step_is_lr_times_sign(fast):
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps).
    p = minicnn.Parameter(np.array([1.0, -2.0, 3.0]))
    p.grad = np.array([0.5, -4.0, 0.0])
    opt = minicnn.Adam([p], lr=0.1, fast=fast)
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.1, -2.0 + 0.1, 3.0], rtol=1e-7)


@ENGINES
def test_adam_three_steps_by_hand(fast):
    p = minicnn.Parameter(np.array([0.5]))
    opt = minicnn.Adam([p], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, fast=fast)
    value, m, v = 0.5, 0.0, 0.0
    for t, g in enumerate([1.0, -0.5, 2.0], start=1):
        p.grad = np.array([g])
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        value -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        assert p.data[0] == pytest.approx(value, rel=1e-12)
    assert opt.t == 3


@ENGINES
def test_adam_weight_decay_adds_l2_gradient(fast):
    p = minicnn.Parameter(np.array([2.0]))
    p.grad = np.array([0.0])
    minicnn.Adam([p], lr=0.1, weight_decay=0.5, fast=fast).step()  # g = 0 + 0.5 * 2 > 0
    assert p.data[0] == pytest.approx(2.0 - 0.1, rel=1e-6)


@ENGINES
def test_adam_keeps_float32(fast):
    p = minicnn.Parameter(np.ones((2, 3), dtype=np.float32))
    p.grad = np.full((2, 3), 0.1, dtype=np.float32)
    minicnn.Adam([p], lr=0.5, fast=fast).step()
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


@ENGINES
def test_adamw_two_steps_by_hand(fast):
    """torch.optim.AdamW: p *= 1 - lr * wd, then the Adam step with the plain gradient."""
    p = minicnn.Parameter(np.array([0.5, -2.0]))
    opt = minicnn.AdamW([p], lr=0.01, weight_decay=0.1, fast=fast)
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


@ENGINES
def test_adamw_decay_is_not_seen_by_the_moments(fast):
    """With g = 0 AdamW only shrinks p (Adam with L2 would move m and v)."""
    p = minicnn.Parameter(np.array([2.0]))
    p.grad = np.array([0.0])
    opt = minicnn.AdamW([p], lr=0.1, weight_decay=0.5, fast=fast)
    opt.step()
    assert p.data[0] == pytest.approx(2.0 * (1 - 0.05), rel=1e-12)
    assert opt.m[0][0] == 0.0 and opt.v[0][0] == 0.0


@ENGINES
def test_parameter_groups_and_no_decay(fast):
    a, b, c = (minicnn.Parameter(np.array([1.0])) for _ in range(3))
    for q in (a, b, c):
        q.grad = np.array([0.0])
    opt = minicnn.AdamW(
        [{"params": [a, b]}, {"params": [c], "weight_decay": 0.3}],
        lr=0.1,
        weight_decay=0.5,
        no_decay=[b],
        fast=fast,
    )
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0, 0.3]
    assert [g["params"] for g in opt.param_groups] == [[a], [b], [c]]
    assert opt.parameters == [a, b, c]
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0], c.data[0]], [0.95, 1.0, 0.97], rtol=1e-12)
    # Adam: the same groups, as an L2 term in the gradient (g = 0 + wd * p, first step -lr)
    x, y = minicnn.Parameter(np.array([1.0])), minicnn.Parameter(np.array([1.0]))
    x.grad, y.grad = np.array([0.0]), np.array([0.0])
    minicnn.Adam([x, y], lr=0.1, weight_decay=0.5, no_decay=[y], fast=fast).step()
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


def test_sgd_nesterov_by_hand():
    """PyTorch's rule: v = momentum * v + g, then p -= lr * (g + momentum * v)."""
    p = minicnn.Parameter(np.array([1.0, -1.0]))
    opt = minicnn.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    p.grad = np.array([1.0, 2.0])
    opt.step()  # v = [1, 2]; p -= 0.1 * ([1, 2] + 0.9 * [1, 2])
    np.testing.assert_allclose(p.data, [0.81, -1.38], rtol=1e-12)
    p.grad = np.array([-0.5, 2.0])
    opt.step()  # v = [0.4, 3.8]; p -= 0.1 * ([-0.5, 2] + 0.9 * [0.4, 3.8]) = 0.1 * [-0.14, 5.42]
    np.testing.assert_allclose(p.data, [0.824, -1.922], rtol=1e-12)
    np.testing.assert_allclose(opt.velocity[0], [0.4, 3.8], rtol=1e-12)
    q = minicnn.Parameter(np.array([1.0, -1.0]))  # the same gradients, plain momentum
    plain = minicnn.SGD([q], lr=0.1, momentum=0.9)
    for g in ([1.0, 2.0], [-0.5, 2.0]):
        q.grad = np.array(g)
        plain.step()
    np.testing.assert_allclose(q.data, [0.86, -1.58], rtol=1e-12)  # p -= 0.1 * v
    with pytest.raises(ValueError, match="needs a momentum > 0"):
        minicnn.SGD([p], lr=0.1, nesterov=True)


def test_sgd_weight_decay_and_no_decay_by_hand():
    """PyTorch's coupled decay: g = g + wd * p before the momentum; no_decay gets none."""
    w, b = minicnn.Parameter(np.array([2.0, -1.0])), minicnn.Parameter(np.array([1.0]))
    opt = minicnn.SGD([w, b], lr=0.1, momentum=0.5, weight_decay=0.1, no_decay=[b])
    for p in (w, b):
        p.grad = np.ones_like(p.data)
    opt.step()  # w: g = 1 + 0.1 * [2, -1] = [1.2, 0.9]; v = g; w -= 0.1 * v
    np.testing.assert_allclose(w.data, [1.88, -1.09], rtol=1e-12)
    np.testing.assert_allclose(b.data, [0.9], rtol=1e-12)  # g = 1, no decay
    opt.step()  # w: g = 1 + 0.1 * [1.88, -1.09] = [1.188, 0.891]; v = 0.5 * [1.2, 0.9] + g
    np.testing.assert_allclose(w.data, [1.88 - 0.1 * 1.788, -1.09 - 0.1 * 1.341], rtol=1e-12)
    np.testing.assert_allclose(b.data, [0.9 - 0.1 * 1.5], rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda ps: minicnn.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: minicnn.Adam(ps, lr=0.1, weight_decay=0.1, fast=False),
    lambda ps: minicnn.AdamW(ps, lr=0.1, fast=False),
], ids=["nesterov", "adam-numpy", "adamw-numpy"])  # fmt: skip
def test_frozen_parameters_are_never_updated(make):
    a, b = minicnn.Parameter(np.ones(3)), minicnn.Parameter(np.ones(3))
    a.trainable = False
    optimizer = make([a, b])
    for p in (a, b):
        p.grad = np.full(3, 0.5)  # a gradient, as a reference layer computes for a frozen one
    optimizer.step()
    np.testing.assert_array_equal(a.data, np.ones(3))
    assert (b.data < 1).all()
    a.trainable = True
    optimizer.step()
    assert (a.data < 1).all()


def adam_runs(make, weight_decay, dtype, steps=5):
    """The parameters, m and v after `steps` steps of make(...) on both engines.

    Four parameters in two groups (the second with twice the decay), one of them in
    no_decay, one frozen throughout and one frozen for the third step; gradients from 1e-3
    to 10 in size.
    """
    rng = np.random.default_rng(0)
    shapes = [(6, 5), (5,), (2, 3, 3, 3), (4,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [
        [rng.standard_normal(s) * 10 ** rng.uniform(-3, 1) for s in shapes] for _ in range(steps)
    ]
    runs = []
    for fast in (True, False):
        ps = [minicnn.Parameter(a.copy()) for a in init]
        ps[3].trainable = False
        groups = [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 2 * weight_decay}]
        opt = make(groups, lr=1e-2, weight_decay=weight_decay, no_decay=[ps[1]], fast=fast)
        for step, gs in enumerate(grads):
            ps[2].trainable = step != 2
            for p, g in zip(ps, gs):
                p.grad = g.astype(dtype)
            opt.step()
        np.testing.assert_array_equal(ps[3].data, init[3])  # frozen: never updated
        assert not opt.m[3].any() and not opt.v[3].any()
        assert all(p.data.dtype == dtype for p in ps)
        runs.append(([p.data for p in ps], opt.m, opt.v))
    return runs


OPTIMIZERS = pytest.mark.parametrize(
    "make, weight_decay",
    [(minicnn.Adam, 0.0), (minicnn.Adam, 0.1), (minicnn.AdamW, 0.0), (minicnn.AdamW, 0.1)],
    ids=["adam", "adam-l2", "adamw-no-decay", "adamw"],
)


@OPTIMIZERS
def test_the_fused_step_equals_the_numpy_lines_in_float64(make, weight_decay):
    (p_fast, m_fast, v_fast), (p_ref, m_ref, v_ref) = adam_runs(make, weight_decay, np.float64)
    for a, b in zip(p_fast + m_fast + v_fast, p_ref + m_ref + v_ref):
        assert rel_error(a, b) <= 1e-12


@OPTIMIZERS
def test_the_fused_step_equals_the_numpy_lines_in_float32(make, weight_decay):
    """The two differ by rounding only. Per step, each rounds its update (a few float32
    roundings of a value of size about lr) and the subtraction from p (half a unit in the
    last place of p): with eps = float32's machine epsilon, after n steps
    |p_fused - p_numpy| <= 4 * n * eps * (|p| + lr), elementwise. m and v differ only
    through p's rounding in the L2 term: norm-wise within 1e-6."""
    steps, lr, eps = 5, 1e-2, np.finfo(np.float32).eps
    (p_fast, m_fast, v_fast), (p_ref, m_ref, v_ref) = adam_runs(
        make, weight_decay, np.float32, steps
    )
    for a, b in zip(p_fast, p_ref):
        assert (np.abs(a - b) <= 4 * steps * eps * (np.abs(b) + lr)).all()
    for a, b in zip(m_fast + v_fast, m_ref + v_ref):
        assert rel_error(a, b) <= 1e-6


@pytest.mark.parametrize("make", [minicnn.Adam, minicnn.AdamW])
def test_adam_runs_the_fused_kernel_by_default(make, monkeypatch):
    """By default each trainable parameter takes one kernel call (kernels/adam.py), bit for
    bit what the kernel gives; fast=False never calls it."""
    calls = []
    step = fast_adam.adam_step
    monkeypatch.setattr(fast_adam, "adam_step", lambda *a: calls.append(a[0]) or step(*a))
    rng = np.random.default_rng(1)
    ps = [minicnn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in [(3, 4), (4,)]]
    ps[1].trainable = False
    expected = [p.data.copy() for p in ps]
    m, v = np.zeros_like(expected[0]), np.zeros_like(expected[0])
    opt = make(ps, lr=1e-2, weight_decay=0.1)
    assert opt.fast is True
    for t in (1, 2):
        for p in ps:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        opt.step()
        if opt.decoupled:  # AdamW: the decay first, in NumPy, then the kernel without it
            expected[0] *= 1 - 1e-2 * 0.1
        wd = 0.0 if opt.decoupled else 0.1
        kernels.adam.adam_step(
            expected[0].reshape(-1), ps[0].grad.reshape(-1), m.reshape(-1), v.reshape(-1),
            1e-2, 0.9, 0.999, 1e-8, wd, t,
        )  # fmt: skip
    assert calls == [ps[0], ps[0]]
    for p, e in zip(ps, expected):
        np.testing.assert_array_equal(p.data, e)
    calls.clear()
    ps[0].grad = np.ones((3, 4), np.float32)
    make(ps, fast=False).step()
    assert calls == []


def test_a_saved_state_resumes_on_either_engine():
    """state_dict is {"t", "m", "v"} on both engines: the fused one resumes bit for bit, the
    NumPy lines within float64 rounding."""
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal((3, 2)) for _ in range(4)]
    p = minicnn.Parameter(rng.standard_normal((3, 2)))
    opt = minicnn.AdamW([p], lr=1e-2)
    for g in grads[:2]:
        p.grad = g
        opt.step()
    state, saved = opt.state_dict(), p.data.copy()
    assert sorted(state) == ["m", "t", "v"] and state["t"] == 2
    for g in grads[2:]:
        p.grad = g
        opt.step()
    for fast in (True, False):
        q = minicnn.Parameter(saved.copy())
        resumed = minicnn.AdamW([q], lr=1e-2, fast=fast)
        resumed.load_state_dict(state)
        for g in grads[2:]:
            q.grad = g
            resumed.step()
        if fast:
            np.testing.assert_array_equal(q.data, p.data)
        else:
            assert rel_error(q.data, p.data) <= 1e-12


def test_the_layers_page_example_runs(capsys):
    """docs/layers.md's example: AdamW with no_decay over a partly frozen model."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "layers.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    exec(compile(block, "docs/layers.md", "exec"), {})
    assert float(capsys.readouterr().out.split()[-1]) < np.log(3) + 0.5
