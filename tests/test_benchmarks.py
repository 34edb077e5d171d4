"""The benchmark's baselines compute what minicnn computes, and its tables say what it measured.

No test here times anything: speed is measured by benchmarks/bench.py, never asserted.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.layers.nested import walk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tables  # noqa: E402
from numpy_reference import NumpyNet  # noqa: E402


@pytest.mark.parametrize("preset", [minicnn.models.paper, minicnn.models.paper13])
def test_numpy_reference_matches_minicnn(preset):
    """Same logits and, after one training step, the same gradients as minicnn."""
    model = preset(num_classes=10, dropout=0.0, seed=1)
    for layer in model:
        if hasattr(layer, "b"):
            layer.b.data += 0.01  # non-zero biases
    net = NumpyNet(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    y = np.array([1, 4, 9])
    np.testing.assert_allclose(net.forward(x), model.forward(x), rtol=1e-4, atol=1e-5)
    loss = minicnn.SoftmaxCrossEntropy()
    value = loss.forward(model.forward(x, training=True), y)
    model.backward(loss.backward())
    assert net.train_step(x, y) == pytest.approx(value, rel=1e-5)
    grads = [g for layer in net.layers if hasattr(layer, "grads") for g in layer.grads()]
    assert len(grads) == len(model.parameters())
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-3, atol=1e-5 * np.abs(p.grad).max())


def row(system, ips, preset="paper", batch=32):
    ms = 1000 * batch / ips
    return dict(preset=preset, batch=batch, system=system, images_per_s=ips, median_ms=ms,
                p25_ms=ms, p75_ms=ms, rounds=3, gflops=10.0)  # fmt: skip


def test_speed_table_reports_ratios_to_pytorch_and_marks_the_fastest():
    results = [
        {"threads": 1, "train": [row("minicnn", 900), row("numpy", 100), row("torch", 1000)]},
        {"threads": 2, "train": [row("minicnn", 1500), row("numpy", 150), row("torch", 1200)]},
    ]
    lines = tables.speed_table(results, "train").splitlines()
    header = (
        "| network | batch | threads | minicnn | minicnn reference engine | plain NumPy | PyTorch |"
    )
    assert lines[0] == header
    assert lines[2] == "| paper | 32 | 2 | **1500 (x1.25)** |  | 150 (x0.12) | 1200 |"
    assert lines[3] == "| paper | 32 | 1 | 900 (x0.90) |  | 100 (x0.10) | **1000** |"


@pytest.mark.parametrize("preset", ["paper_bn", "paper_res"])
def test_pytorch_twin_computes_what_minicnn_computes(preset):
    """The benchmark's PyTorch twin (skipped without torch): the same logits in evaluation and
    training (batch statistics), and the same gradient of every parameter, in float64."""
    torch = pytest.importorskip("torch")
    from bench import torch_twin

    model = getattr(minicnn.models, preset)(num_classes=10, image_size=32, dropout=0.0, seed=1)
    rng = np.random.default_rng(2)
    for layer in [lay for _, lay in walk(model.layers)]:
        if isinstance(layer, minicnn.BatchNorm2D):  # a branch's last gamma starts at 0
            layer.gamma.data[:] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.running_var[:] = rng.uniform(0.5, 2.0, layer.num_features)
    model.astype(np.float64)
    twin = torch_twin(model).double()
    x = rng.standard_normal((4, 3, 32, 32))
    with torch.no_grad():
        theirs = twin.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, model.forward(x), rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal((4, 10))
    ours = model.forward(x, training=True)
    model.backward(dout)
    out = twin.train()(torch.from_numpy(x))
    out.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out.detach().numpy(), ours, rtol=1e-10, atol=1e-12)
    grads = [p.grad.numpy() for p in twin.parameters()]  # (out, in) for Linear: transposed
    assert len(grads) == len(model.parameters())
    for g, p in zip(grads, model.parameters()):
        g = g.T if g.ndim == 2 else g
        np.testing.assert_allclose(g, p.grad, rtol=1e-8, atol=1e-10 * np.abs(p.grad).max())
