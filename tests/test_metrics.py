"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest

from minicnn.metrics import accuracy, binary_metrics, confusion_matrix, roc_auc, top_k_accuracy


def test_accuracy():
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == 0.75
    assert math.isnan(accuracy([], []))


def test_top_k_accuracy():
    probs = np.array(
        [
            [0.5, 0.3, 0.2],  # true 1: second -> in top 2, not top 1
            [0.1, 0.2, 0.7],  # true 2: first
            [0.6, 0.3, 0.1],  # true 2: last -> never in top 2
        ]
    )
    y = np.array([1, 2, 2])
    assert top_k_accuracy(y, probs, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(y, probs, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(y, probs, 5) == 1.0  # k larger than K: every class counts


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.sum() == 6


def test_binary_metrics_by_hand():
    # 4 positives, 6 negatives; threshold 0.5
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05])
    m = binary_metrics(y, s)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 1, 5)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.75 / 1.5)
    assert m["accuracy"] == pytest.approx(8 / 10)
    # AUC: of the 24 (positive, negative) pairs, the positive scores higher in all but
    # (0.6 vs 0.7), (0.3 vs 0.7), (0.3 vs 0.4): 21 / 24
    assert m["auc"] == pytest.approx(21 / 24)


def test_roc_auc_ties_count_half_and_degenerate_cases():
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([1, 1, 0], [0.1, 0.2, 0.9]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_binary_metrics_zero_denominators_are_nan():
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])  # no positives, none predicted
    assert math.isnan(m["sensitivity"]) and math.isnan(m["precision"])
    assert m["specificity"] == 1.0
