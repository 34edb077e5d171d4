"""Learning-rate schedules against their formulas, computed by hand at given steps."""

import math

import numpy as np
import pytest

import minicnn
from minicnn.schedules import Cosine, Linear, OneCycle, Step


def optimizer(lr=0.1):
    return minicnn.AdamW([minicnn.Parameter(np.zeros(1))], lr=lr)


def rates(schedule, n):
    """optimizer.lr for steps 0 .. n-1, stepping as fit does (after each optimizer step)."""
    out = []
    for _ in range(n):
        out.append(schedule.optimizer.lr)
        assert schedule.lr == schedule.optimizer.lr
        schedule.step()
    return out


def test_cosine_with_warmup_by_hand():
    s = Cosine(optimizer(0.1), total_steps=6, warmup_steps=2, min_lr=0.01)
    # warm-up 0, 0.05; then 0.01 + 0.09 * (1 + cos(pi * j / 4)) / 2 for j = 0..4; then 0.01
    c = [0.01 + 0.09 * (1 + math.cos(math.pi * j / 4)) / 2 for j in range(5)]
    assert c[0] == pytest.approx(0.1) and c[2] == pytest.approx(0.055) and c[4] == 0.01
    np.testing.assert_allclose(rates(s, 9), [0.0, 0.05, *c, 0.01, 0.01], rtol=1e-12, atol=1e-15)
    plain = Cosine(optimizer(1.0), total_steps=4)  # no warm-up: starts at the base rate
    half = 0.5 * math.sqrt(0.5)  # (1 + cos(pi / 4)) / 2 = 0.5 + half
    np.testing.assert_allclose(rates(plain, 5), [1.0, 0.5 + half, 0.5, 0.5 - half, 0.0], atol=1e-15)


def test_linear_with_warmup_by_hand():
    s = Linear(optimizer(0.1), total_steps=6, warmup_steps=2, min_lr=0.01)
    # warm-up 0, 0.05; then 0.01 + 0.09 * (1 - j / 4) for j = 0..4: 0.1, 0.0775, 0.055,
    # 0.0325, 0.01; then 0.01 for good
    want = [0.0, 0.05, 0.1, 0.0775, 0.055, 0.0325, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(rates(s, 9), want, rtol=1e-12, atol=1e-15)
    to_zero = Linear(optimizer(1.0), total_steps=4)  # no warm-up: from the base rate to 0
    np.testing.assert_allclose(rates(to_zero, 6), [1.0, 0.75, 0.5, 0.25, 0.0, 0.0], atol=1e-15)
    a = Linear(optimizer(0.3), total_steps=10, warmup_steps=3)
    rates(a, 4)
    b = Linear(optimizer(0.9), total_steps=10, warmup_steps=3)
    b.load_state_dict(a.state_dict())  # the checkpoint's base rate and step win
    assert b.optimizer.lr == a.optimizer.lr == pytest.approx(0.3 * 6 / 7)
    assert rates(b, 7) == rates(a, 7)
    with pytest.raises(ValueError, match="a Linear schedule's state cannot load"):
        Cosine(optimizer(), total_steps=10).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="Linear needs 0 <= warmup_steps < total_steps"):
        Linear(optimizer(), total_steps=3, warmup_steps=3)


def test_step_by_hand():
    s = Step(optimizer(1.0), step_size=3, gamma=0.5)
    np.testing.assert_allclose(rates(s, 8), [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_one_cycle_matches_pytorchs_formula():
    """OneCycleLR(max_lr=1, total_steps=10, pct_start=0.3), anneal "cos", momentum off:
    initial 1/25 = 0.04, final 0.04/1e4; phase one ends at 0.3 * 10 - 1 = 2 (float)."""
    s = OneCycle(optimizer(123.0), max_lr=1.0, total_steps=10)
    got = rates(s, 12)

    def anneal(a, b, t):
        return b + (a - b) / 2 * (math.cos(math.pi * t) + 1)

    up = [anneal(0.04, 1.0, k / 2) for k in range(3)]
    down = [anneal(1.0, 4e-6, (k - 2) / 7) for k in range(3, 10)]
    np.testing.assert_allclose(got, up + down + [4e-6, 4e-6], rtol=1e-12)
    assert got[0] == pytest.approx(0.04) and got[1] == pytest.approx(0.52) and got[2] == 1.0
    assert got[9] == pytest.approx(4e-6)


def test_state_round_trip_and_bad_arguments():
    a = Cosine(optimizer(0.2), total_steps=10, warmup_steps=3)
    rates(a, 5)
    b = Cosine(optimizer(0.7), total_steps=10, warmup_steps=3)  # another base: state wins
    b.load_state_dict(a.state_dict())
    assert b.optimizer.lr == a.optimizer.lr == a.rate(5)
    assert rates(b, 6) == rates(a, 6)
    with pytest.raises(ValueError, match="a Cosine schedule's state cannot load"):
        Step(optimizer(), 2).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        Cosine(optimizer(), total_steps=5, warmup_steps=5)
    with pytest.raises(ValueError, match="step_size >= 1"):
        Step(optimizer(), 0)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycle(optimizer(), 1.0, total_steps=3, pct_start=0.3)
