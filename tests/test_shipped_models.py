"""The model files shipped in examples/models load on a fresh machine and predict."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import minicnn

MODELS = sorted((Path(__file__).resolve().parent.parent / "examples" / "models").glob("*.npz"))


def test_models_are_shipped():
    assert any("pneumoniamnist" in m.name for m in MODELS)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_shipped_model_loads_and_predicts(path, tmp_path):
    model = minicnn.load(path)
    C, H, W = model.input_shape
    assert model.class_names and len(model.class_names) >= 2
    images = np.random.default_rng(0).integers(0, 256, (3, C, H, W), dtype=np.uint8)
    proba = model.predict_proba(images)
    assert proba.shape == (3, len(model.class_names))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    image = tmp_path / "image.png"  # another size and mode than the model's input
    Image.fromarray(np.full((100, 80, 3), 128, np.uint8)).save(image)
    out = subprocess.run(
        [sys.executable, "-m", "minicnn", "predict", str(path), str(image), "--top-k", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert any(name in out for name in model.class_names)
    if len(model.class_names) == 2:  # P(class 1) and the decision against the threshold
        assert out.count("%") == 1 and f"P({model.class_names[1]})" in out and "->" in out
    else:
        assert out.count("%") == 2
