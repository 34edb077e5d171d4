"""Calibration (minicnn.metrics): Brier score, expected calibration error, reliability diagram
and their bootstrap intervals, against values computed by hand; calibration.png."""

import math

import numpy as np
import pytest

from minicnn import metrics
from minicnn.metrics import (
    bootstrap,
    bootstrap_calibration,
    brier_score,
    expected_calibration_error,
    reliability_curve,
)

Y = np.array([0, 0, 1, 1, 1])
S = np.array([0.05, 0.25, 0.3, 0.75, 0.95])


def test_brier_score_by_hand():
    # squared errors 0.0025, 0.0625, 0.49, 0.0625, 0.0025: sum 0.62
    assert brier_score(Y, S) == pytest.approx(0.62 / 5)
    assert brier_score([1, 0], [1.0, 0.0]) == 0.0
    assert brier_score([1, 0], [0.0, 1.0]) == 1.0
    assert math.isnan(brier_score([], []))


def test_ece_by_hand():
    # 10 bins: each score alone in its bin (0, 2, 3, 7, 9): ECE = mean |s - y|
    assert expected_calibration_error(Y, S) == pytest.approx((0.05 + 0.25 + 0.7 + 0.25 + 0.05) / 5)
    # 2 bins: [0, 0.5) holds 0.05, 0.25, 0.3 (mean 0.2, positives 1/3): 3/5 * |0.2 - 1/3|;
    # [0.5, 1] holds 0.75, 0.95 (mean 0.85, positives 1): 2/5 * 0.15 -> (0.4 + 0.3) / 5
    assert expected_calibration_error(Y, S, bins=2) == pytest.approx(0.14)
    # calibrated in every bin: four images at 0.25, one positive -> ECE 0
    assert expected_calibration_error([1, 0, 0, 0], [0.25] * 4) == pytest.approx(0.0)
    assert math.isnan(expected_calibration_error([], []))


def test_reliability_curve_by_hand():
    c = reliability_curve(Y, S, bins=2)
    assert c["edges"].tolist() == [0.0, 0.5, 1.0]
    assert c["count"].tolist() == [3, 2]
    assert c["mean_score"] == pytest.approx([0.2, 0.85])
    assert c["frequency"] == pytest.approx([1 / 3, 1.0])
    # a score of exactly 1 falls in the last bin, 0.5 in the upper one; empty bins are nan
    c = reliability_curve([1, 0], [1.0, 0.5], bins=4)
    assert c["count"].tolist() == [0, 0, 1, 1]
    assert np.isnan(c["mean_score"][:2]).all() and np.isnan(c["frequency"][:2]).all()
    assert c["frequency"][2:].tolist() == [0.0, 1.0]


def naive_calibration_bootstrap(y, s, bins, resamples, seed, level=0.95):
    """The plain loop: the resamples of `bootstrap`, each scored by the functions above."""
    rng = np.random.default_rng(seed)
    brier, ece, freq = [], [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        brier.append(brier_score(y[idx], s[idx]))
        ece.append(expected_calibration_error(y[idx], s[idx], bins))
        freq.append(reliability_curve(y[idx], s[idx], bins)["frequency"])
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)
    freq = np.array(freq)
    lows_highs = [
        np.percentile(freq[np.isfinite(freq[:, b]), b], q)
        if np.isfinite(freq[:, b]).any()
        else (np.nan, np.nan)
        for b in range(bins)
    ]
    return np.percentile(brier, q), np.percentile(ece, q), np.array(lows_highs)


def test_bootstrap_calibration_equals_the_plain_loop():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40)
    s = np.clip(0.3 * y + rng.random(40) * 0.7, 0, 1)
    got = bootstrap_calibration(y, s, bins=5, resamples=300, seed=9, block=64)
    brier, ece, freq = naive_calibration_bootstrap(y, s, 5, 300, 9)
    assert [got["brier"]["low"], got["brier"]["high"]] == pytest.approx(brier)
    assert [got["ece"]["low"], got["ece"]["high"]] == pytest.approx(ece)
    assert got["brier"]["value"] == pytest.approx(brier_score(y, s))
    assert got["ece"]["value"] == pytest.approx(expected_calibration_error(y, s, 5))
    assert got["brier"]["defined"] == got["ece"]["defined"] == 300
    assert np.allclose(got["frequency"]["low"], freq[:, 0], equal_nan=True)
    assert np.allclose(got["frequency"]["high"], freq[:, 1], equal_nan=True)
    assert got["bins"] == 5 and got["resamples"] == 300 and got["seed"] == 9


def test_bootstrap_calibration_uses_the_screening_bootstraps_resamples():
    """Same seed, same resamples: the accuracy at 0.5 of each draw, recomputed from the draws
    bootstrap_calibration sees, equals the one bootstrap reports (a Brier score of 0/1 scores
    is 1 - accuracy)."""
    y = np.array([0, 1, 1, 0, 1, 1, 0, 1])
    s = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])  # hard 0/1 calls, 2 wrong
    screening = bootstrap(y, s, 0.5, resamples=500, seed=4)
    calib = bootstrap_calibration(y, s, resamples=500, seed=4)
    assert calib["brier"]["value"] == pytest.approx(1 - screening["accuracy"]["value"])
    assert calib["brier"]["low"] == pytest.approx(1 - screening["accuracy"]["high"])
    assert calib["brier"]["high"] == pytest.approx(1 - screening["accuracy"]["low"])


def test_resample_weights_are_those_of_the_documented_draws():
    rng = np.random.default_rng(5)
    blocks = list(metrics._resample_weights(6, 7, seed=5, block=3))
    assert [len(b) for b in blocks] == [3, 3, 1]
    for row in np.concatenate(blocks):
        assert row.tolist() == np.bincount(rng.integers(0, 6, 6), minlength=6).tolist()


def test_calibration_png_draws_points_bars_and_histogram(tmp_path):
    from PIL import Image

    from minicnn import plots

    curve = reliability_curve(Y, S, bins=2)  # points (0.2, 1/3) and (0.85, 1)
    intervals = ([0.1, 0.9], [0.6, 1.0])
    path = plots.plot_calibration(curve, tmp_path / "calibration.png", intervals,
                                  ece=0.14, brier=0.124)  # fmt: skip
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape == (50 + 460 + 45 + 80 + 30, 70 + 460 + 25, 3)
    x0, y1, side = 70, 50 + 460, 460

    def at(f, t):
        return img[round(y1 - t * side), round(x0 + f * side)].tolist()

    assert at(0.2, 1 / 3) == list(plots.TRAIN_COLOUR)  # a bin's point
    assert at(0.85, 1.0) == list(plots.TRAIN_COLOUR)
    assert at(0.2, 0.15) == list(plots.VAL_COLOUR)  # its interval's bar, below the point
    assert at(0.2, 0.05) != list(plots.VAL_COLOUR)  # below the interval
    hist_bottom = y1 + 45 + 80
    assert img[hist_bottom - 70, x0 + side // 4].tolist() == list(plots.GRID)  # 3 images: full
    assert img[hist_bottom - 70, x0 + 3 * side // 4].tolist() == [255, 255, 255]  # 2: 2/3 high
    assert img[hist_bottom - 40, x0 + 3 * side // 4].tolist() == list(plots.GRID)
