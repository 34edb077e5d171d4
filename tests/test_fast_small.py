"""Inference at small batches on the fast engine: what it keeps from call to call is exact.

A model keeps the fast engine's plan from one call to the next; a change of the model (a
layer or a Parameter replaced) makes a new one.
"""

import numpy as np

import minicnn


def test_the_plan_is_kept_until_a_layer_or_a_parameter_changes():
    model = minicnn.models.paper(num_classes=4, image_size=32, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.forward(x)
    steps = model._steps
    model.forward(x)
    assert model._steps is steps  # the same steps, not a new plan
    model.layers[0] = minicnn.Conv2D(3, 16, 3, padding="same", rng=np.random.default_rng(1))
    model.forward(x)
    assert model._steps is not steps and model._steps[0][1].conv is model.layers[0]
    steps = model._steps
    model.layers[0].b = minicnn.Parameter(np.ones(16, np.float32))
    model.forward(x)
    assert model._steps is not steps
