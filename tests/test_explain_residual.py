"""minicnn.explain through residual blocks: the default map, layers named by path, by hand."""

import numpy as np
import pytest

import minicnn
from minicnn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Residual, Sequential, explain
from minicnn.layers.nested import walk

ENGINES = pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])


def small_res(fast):
    """paper_res at 32x32 (last map 2x2), its zero-started gammas set so every block counts."""
    model = minicnn.models.paper_res(num_classes=5, image_size=32, seed=3)
    rng = np.random.default_rng(4)
    for _, layer in walk(model.layers):
        if hasattr(layer, "gamma"):
            layer.gamma.data[:] = rng.uniform(0.5, 1.5, layer.gamma.size)
    model.fast = fast
    return model.astype(np.float64)


@ENGINES
def test_paper_res_default_map_is_the_last_blocks_output(fast):
    model = small_res(fast)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32))
    maps = explain.grad_cam(model, x, target=1)
    assert maps.shape == (3, 32, 32)
    assert maps.max() == pytest.approx(1.0) and maps.min() >= 0  # scaled, not all zero
    last = max(i for i, lay in enumerate(model.layers) if isinstance(lay, Residual))
    np.testing.assert_array_equal(explain.grad_cam(model, x, target=1, layer=last), maps)
    inner = explain.grad_cam(model, x, target=1, layer=f"{last}.branch.2")  # its ReLU
    assert inner.shape == (3, 32, 32) and inner.max() == pytest.approx(1.0)
    assert not np.allclose(inner, maps)  # another layer, another map


def test_paper_res_engines_agree_on_a_map_inside_a_block():
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32))
    path = "6.branch.1"  # the BatchNorm after the first (strided) conv of stage 3
    fast = explain.grad_cam(small_res(True), x, target=2, layer=path)
    ref = explain.grad_cam(small_res(False), x, target=2, layer=path)
    assert fast.max() == pytest.approx(1.0)
    np.testing.assert_allclose(fast, ref, atol=1e-9)
    maps = explain.feature_maps(small_res(True), x, path)
    assert maps.shape == (2, 128, 4, 4)  # 32 -> pool 16 -> 8 (stage 2) -> 4 (stage 3)


def conv(C, F, rng):
    layer = Conv2D(C, F, 3, padding=1, rng=rng)
    layer.b.data = 0.1 * rng.standard_normal(F)
    return layer


def hand_model(fast):
    """conv -> Residual(conv -> ReLU -> conv) -> GAP -> Dense, float64 on 5x5 images."""
    rng = np.random.default_rng(7)
    block = Residual([conv(3, 3, rng), ReLU(), conv(3, 3, rng)])
    dense = Dense(3, 4, rng=rng)
    dense.b.data = rng.standard_normal(4)
    layers = [conv(2, 3, rng), block, GlobalAvgPool2D(), dense]
    return Sequential(layers, input_shape=(2, 5, 5), fast=fast).astype(np.float64)


def plain_conv(x, W, b):
    """(C, H, W) 'same' 3x3 convolution as the textbook sum: (F, H, W)."""
    C, H, Wd = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.empty((W.shape[0], H, Wd))
    for f in range(W.shape[0]):
        for i in range(H):
            for j in range(Wd):
                out[f, i, j] = np.sum(p[:, i : i + 3, j : j + 3] * W[f]) + b[f]
    return out


@ENGINES
def test_grad_cam_inside_a_block_equals_a_plain_computation(fast):
    model = hand_model(fast)
    stem, block, _, dense = model.layers
    b0, _, b2 = block.branch
    x = np.random.default_rng(8).standard_normal((1, 2, 5, 5))
    target = 3
    h = plain_conv(x[0], stem.W.data, stem.b.data)  # the block's input (3, 5, 5)
    A = np.maximum(plain_conv(h, b0.W.data, b0.b.data), 0)  # the ReLU inside: "1.branch.1"

    def score(A):  # the rest of the model as plain NumPy: the target's logit
        out = np.maximum(plain_conv(A, b2.W.data, b2.b.data) + h, 0)
        return out.mean(axis=(1, 2)) @ dense.W.data[:, target] + dense.b.data[target]

    dA = np.zeros_like(A)  # d(score)/dA by central differences (score is piecewise linear)
    for idx in np.ndindex(A.shape):
        e = np.zeros_like(A)
        e[idx] = 1e-6
        dA[idx] = (score(A + e) - score(A - e)) / 2e-6
    cam = np.maximum(np.einsum("c,chw->hw", dA.mean(axis=(1, 2)), A), 0)  # same size: no resize
    assert cam.max() > 0
    maps = explain.grad_cam(model, x, target=target, layer="1.branch.1")
    np.testing.assert_allclose(maps[0], cam / cam.max(), atol=1e-7)
    np.testing.assert_allclose(explain.feature_maps(model, x, "1.branch.1")[0], A, atol=1e-12)


def test_paths_leave_the_model_as_it_was_and_bad_paths_say_so():
    model = hand_model(True)
    before = [(p, id(lay)) for p, lay in walk(model.layers)]
    x = np.random.default_rng(9).standard_normal((2, 2, 5, 5))
    explain.grad_cam(model, x, layer="1.branch.2")
    assert [(p, id(lay)) for p, lay in walk(model.layers)] == before
    assert explain.grad_cam(model, x).shape == (2, 5, 5)  # default: the block's output, "1"
    assert explain.filters(model, "1.branch.2").shape == (3, 3, 3, 3)
    assert explain.locate(model, -3) == ("1", model.layers[1])
    assert explain.layer_arg("5.branch.3") == "5.branch.3" and explain.layer_arg("-1") == -1
    with pytest.raises(ValueError, match=r"layer '1.branch.7' is not in the model: .* 0..3"):
        explain.grad_cam(model, x, layer="1.branch.7")
    with pytest.raises(ValueError, match=r"layer #1.branch.1 ReLU\(\) has no filters; .* #0, "):
        explain.filters(model, "1.branch.1")
    with pytest.raises(ValueError, match=r"layer #2 GlobalAvgPool2D\(\) gives \(3,\)"):
        explain.grad_cam(model, x, layer=2)


def test_a_model_whose_convolutions_are_all_inside_blocks():
    rng = np.random.default_rng(10)
    block = Residual([conv(2, 2, rng), ReLU(), conv(2, 2, rng)])
    model = Sequential([ReLU(), block, GlobalAvgPool2D(), Dense(2, 3, rng=rng)], fast=False)
    x = np.random.default_rng(11).standard_normal((1, 2, 6, 6))
    assert explain.grad_cam(model, x, target=0).shape == (1, 6, 6)  # the block's output
    with pytest.raises(ValueError, match=r"layer #0 ReLU\(\) comes before the first convolution"):
        explain.grad_cam(model, x, layer=0)


def test_the_commands_take_a_path_inside_a_block(tmp_path, capsys):
    from PIL import Image

    from minicnn.cli import main

    rng = np.random.default_rng(12)
    block = Residual([conv(4, 4, rng), ReLU(), conv(4, 4, rng)])
    layers = [conv(3, 4, rng), block, GlobalAvgPool2D(), Dense(4, 3, rng=rng)]
    model = Sequential(layers, input_shape=(3, 16, 16))
    path = tmp_path / "res.npz"
    minicnn.save(model, path)
    image = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    assert main(["explain", str(path), str(image), "--layer", "1.branch.1", "--out", str(out)]) == 0
    assert (out / "a.gradcam.png").exists()
    png = tmp_path / "f.png"
    assert main(["filters", str(path), "--layer", "1.branch.2", "--out", str(png)]) == 0
    assert png.exists()
    capsys.readouterr()
    assert main(["filters", str(path), "--layer", "1.shortcut.0"]) == 1
    assert "error: layer '1.shortcut.0' is not in the model" in capsys.readouterr().err
