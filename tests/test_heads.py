"""minicnn.heads: the one rule "a two-class sigmoid head is one unit" and what follows from it."""

import numpy as np
import pytest

from minicnn import heads


def test_units_and_classes_are_inverse():
    assert heads.head_units(2, "sigmoid") == 1 and heads.head_units(2, "softmax") == 2
    assert heads.head_units(5, "sigmoid") == 5 and heads.head_units(200, "softmax") == 200
    for output in heads.OUTPUTS:
        for K in (2, 3, 10):
            assert heads.num_classes(heads.head_units(K, output), output) == K
    assert heads.num_classes(1, "softmax") == 1  # a one-unit softmax is one class, not two
    with pytest.raises(ValueError, match='output must be "softmax" or "sigmoid"'):
        heads.head_units(2, "tanh")


def test_one_sigmoid_unit_gives_two_columns_and_thresholds_at_zero():
    logits = np.array([[-2.0], [0.0], [3.0]])
    p = heads.probabilities(logits, "sigmoid")
    expected1 = 1 / (1 + np.exp(-logits[:, 0]))
    assert p.shape == (3, 2)
    assert np.allclose(p[:, 1], expected1) and np.allclose(p.sum(axis=1), 1.0)
    assert heads.predictions(logits, "sigmoid").tolist() == [0, 0, 1]  # logit 0: class 0
    assert heads.sigmoid_targets(np.array([1, 0, 1]), logits).tolist() == [[1.0], [0.0], [1.0]]


def test_several_units_argmax_softmax_and_one_hot():
    logits = np.array([[1.0, 3.0, 2.0], [0.5, -1.0, 0.0]])
    p = heads.probabilities(logits, "softmax")
    e = np.exp(logits)
    assert np.allclose(p, e / e.sum(axis=1, keepdims=True))
    assert heads.probabilities(logits, "sigmoid").shape == (2, 3)  # one sigmoid per class
    assert heads.predictions(logits, "softmax").tolist() == [1, 0]
    onehot = heads.sigmoid_targets(np.array([2, 0]), logits)
    assert onehot.tolist() == [[0, 0, 1], [1, 0, 0]]


@pytest.mark.parametrize(
    "output, probs",
    [
        ("softmax", [[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]]),
        ("sigmoid", [[0.8, 0.2], [0.25, 0.75]]),  # two classes: one unit, from P(class 1)
        ("sigmoid", [[0.9, 0.1, 0.6], [0.5, 0.5, 0.01]]),  # one unit per class
    ],
)
def test_logits_of_is_the_inverse_of_probabilities(output, probs):
    p = np.array(probs)
    logits = heads.logits_of(p, output)
    assert logits.shape[1] == (1 if p.shape[1] == 2 and output == "sigmoid" else p.shape[1])
    np.testing.assert_allclose(heads.probabilities(logits, output), p, rtol=1e-12)
    if output == "sigmoid" and p.shape[1] == 2:
        np.testing.assert_allclose(logits[:, 0], np.log(p[:, 1] / p[:, 0]), rtol=1e-12)


def test_logits_of_certain_probabilities_are_finite():
    for output, p in (("softmax", [[1.0, 0.0]]), ("sigmoid", [[0.0, 1.0]])):
        logits = heads.logits_of(np.array(p, np.float32), output)
        assert np.isfinite(logits).all() and logits.dtype == np.float32
        assert heads.predictions(logits, output).tolist() == [np.argmax(p)]
