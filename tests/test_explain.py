"""minicnn.explain: Grad-CAM, saliency, occlusion by hand and by finite differences; the CLI."""

import numpy as np
import pytest
from PIL import Image

import minicnn
from minicnn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, explain, plots
from minicnn.cli import main
from minicnn.data import channel_stats, synthetic

ENGINES = pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])

# The hand-set network's input: a 4x4 image with two channels (Captum's tests do the same).
X0 = [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]]
X1 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 4, 4], [0, 0, 4, 4]]
X = np.array([[X0, X1]], dtype=np.float64)  # (1, 2, 4, 4)


def hand_net(pool, dense_weights, fast):
    """Conv2D 1x1 that copies channel 0 and takes 1 from channel 1, ReLU, [pool,] a Dense.

    Its ReLU output is A0 = X0 and A1 = 3 on the lower right 2x2 block, 0 elsewhere.
    """
    conv = Conv2D(2, 2, 1)
    conv.W.data = np.eye(2).reshape(2, 2, 1, 1)
    conv.b.data = np.array([0.0, -1.0])
    dense = Dense(dense_weights.shape[0], 2)
    dense.W.data = dense_weights
    dense.b.data = np.zeros(2)
    layers = [conv, ReLU()] + ([MaxPool2D(2)] if pool else []) + [Flatten(), dense]
    return Sequential(layers, input_shape=(2, 4, 4), fast=fast)


@ENGINES
def test_grad_cam_equals_the_map_computed_by_hand(fast):
    W = np.zeros((2, 4, 4, 2))  # (channel, h, w, class): the Dense weights, flattened below
    W[0, :, 0::2, 0] = 4  # class 0: d(score)/dA0 is 4 on even columns, 0 on odd: mean 2
    W[1, :, :, 0] = -1  # class 0: alpha1 = -1
    W[1, :, :, 1] = 1  # class 1: alpha = (0, 1)
    model = hand_net(False, W.reshape(32, 2), fast)
    # class 0: ReLU(2 A0 - A1) = 2 at (0, 0), 4 at (1, 1), 6 - 3 at (2, 2), < 0 on the rest
    # of the lower right block; divided by its maximum, 4
    expected0 = np.zeros((4, 4))
    expected0[0, 0], expected0[1, 1], expected0[2, 2] = 0.5, 1.0, 0.75
    np.testing.assert_allclose(explain.grad_cam(model, X, target=0)[0], expected0, atol=1e-12)
    # class 1: A1 / 3; it is also the predicted class (logits 4 and 12), the default target
    expected1 = np.zeros((4, 4))
    expected1[2:, 2:] = 1.0
    np.testing.assert_allclose(explain.grad_cam(model, X, target=1)[0], expected1, atol=1e-12)
    np.testing.assert_allclose(explain.grad_cam(model, X)[0], expected1, atol=1e-12)


@ENGINES
def test_grad_cam_after_pooling_upsamples_bilinearly(fast):
    W = np.zeros((2, 2, 2, 2))  # pooled maps P0 = [[2, 0], [0, 3]], P1 = [[0, 0], [0, 3]]
    W[0, :, :, 0] = [[2, 0], [1, 1]]  # alpha0 = 1
    W[1, :, :, 0] = -0.5  # alpha1 = -0.5
    model = hand_net(True, W.reshape(8, 2), fast)
    # ReLU(P0 - P1 / 2) = [[2, 0], [0, 1.5]], resized to 4x4 with pixel centres at
    # 0, 0.25, 0.75, 1 of the 2x2 grid (weights 1 | 3/4, 1/4 | 1/4, 3/4 | 1), then / 2
    expected = [
        [1, 0.75, 0.25, 0],
        [0.75, 0.609375, 0.328125, 0.1875],
        [0.25, 0.328125, 0.484375, 0.5625],
        [0, 0.1875, 0.5625, 0.75],
    ]
    np.testing.assert_allclose(explain.grad_cam(model, X, target=0)[0], expected, atol=1e-12)
    # at the ReLU (layer 1), before the pool: the gradient reaches each window's first
    # maximum only: alpha0 = (2 + 0 + 1 + 1) / 16, alpha1 = -4 * 0.5 / 16, so the map is
    # ReLU(A0 / 4 - A1 / 8): 1/4 at (0, 0), 1/2 at (1, 1), 3/4 - 3/8 at (2, 2); / 1/2
    expected = np.zeros((4, 4))
    expected[0, 0], expected[1, 1], expected[2, 2] = 0.5, 1.0, 0.75
    cam = explain.grad_cam(model, X, target=0, layer=1)[0]
    np.testing.assert_allclose(cam, expected, atol=1e-12)


def small_net(fast, output="softmax", units=4, seed=0):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(2, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten()]
    layers.append(Dense(27, units, rng=rng, init="glorot"))
    model = Sequential(layers, input_shape=(2, 6, 6), output=output, fast=fast)
    return model.astype(np.float64)


def logit_gradient_by_finite_differences(model, x, target, eps=1e-6):
    """d(logit[target]) / dx for one image x (C, H, W), by central differences."""
    grad = np.empty(x.size)
    flat = x.reshape(-1)
    for i in range(x.size):
        old = flat[i]
        flat[i] = old + eps
        plus = model.forward(x[None])[0, target]
        flat[i] = old - eps
        minus = model.forward(x[None])[0, target]
        flat[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(x.shape)


@ENGINES
def test_saliency_equals_finite_differences_in_float64(fast):
    model = small_net(fast)
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 6))  # away from ReLU and pool kinks
    targets = np.array([1, 3])
    maps = explain.saliency(model, x, target=targets)
    for n, t in enumerate(targets):
        g = np.abs(logit_gradient_by_finite_differences(model, x[n].copy(), t)).max(axis=0)
        np.testing.assert_allclose(maps[n], g / g.max(), rtol=1e-6, atol=1e-9)
    # training is unaffected: the first layer still skips the input gradient unless asked
    model.forward(x)
    assert model.backward(np.ones((2, 4))) is None


def test_a_sigmoid_unit_explains_its_logit_and_its_negation():
    model = small_net(False, output="sigmoid", units=1)
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6))
    # at the ReLU (6x6 like the input, so not resized): ReLU(sum) and ReLU(-sum) of the same
    # weighted maps, never both above zero
    pos = explain.grad_cam(model, x, target=1, layer=1)
    neg = explain.grad_cam(model, x, target=0, layer=1)
    assert not np.any((pos > 0) & (neg > 0))
    assert np.all((pos > 0).any(axis=(1, 2)) & (neg > 0).any(axis=(1, 2)))  # both say something
    # the default is the map of the class the model predicts
    pos, neg = explain.grad_cam(model, x, target=1), explain.grad_cam(model, x, target=0)
    predicted = model.predict(x)
    np.testing.assert_array_equal(
        explain.grad_cam(model, x), np.where(predicted[:, None, None] == 1, pos, neg)
    )
    # saliency takes |gradient|: the same for the logit and its negation
    np.testing.assert_allclose(
        explain.saliency(model, x, target=0), explain.saliency(model, x, target=1)
    )


@ENGINES
def test_occlusion_equals_the_probability_drop_computed_directly(fast):
    model = small_net(fast)
    x = np.random.default_rng(3).standard_normal((2, 2, 6, 6))
    p = model.predict_proba(x)  # float input: taken as already normalised
    t = p.argmax(1)
    whole = explain.occlusion(model, x, patch=6, fill=0.5)  # one patch: the whole image
    hidden = model.predict_proba(np.full_like(x, 0.5))
    for n in range(2):
        np.testing.assert_allclose(whole[n], p[n, t[n]] - hidden[n, t[n]], atol=1e-12)
    # 4x4 patches every 2 pixels: origins 0 and 2 per axis; pixel (2, 2) lies under all four
    maps = explain.occlusion(model, x, target=[0, 2], patch=4, stride=2)
    drops = []
    for y0 in (0, 2):
        for x0 in (0, 2):
            z = x.copy()
            z[:, :, y0 : y0 + 4, x0 : x0 + 4] = 0.0
            drops.append(p[[0, 1], [0, 2]] - model.predict_proba(z)[[0, 1], [0, 2]])
    np.testing.assert_allclose(maps[:, 2, 2], np.mean(drops, axis=0), atol=1e-12)
    np.testing.assert_allclose(maps[:, 0, 0], drops[0], atol=1e-12)  # only the first covers it


def test_both_engines_give_the_same_maps():
    model = minicnn.models.paper(num_classes=3, image_size=32, seed=1).astype(np.float64)
    x = np.random.default_rng(4).standard_normal((3, 3, 32, 32))
    results = []
    for fast in (True, False):
        model.fast = fast
        results.append(
            [
                explain.grad_cam(model, x),
                explain.grad_cam(model, x, target=2, layer=4),
                explain.saliency(model, x),
                explain.occlusion(model, x, patch=8, stride=8),
                explain.feature_maps(model, x, 5),
            ]
        )
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert results[0][4].shape == (3, 32, 8, 8)


def correlation(a, b):
    """Pearson correlation of each pair of maps a[n], b[n] (0 when one of them is constant)."""
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-30)


def tiny_cnn(seed):
    rng = np.random.default_rng(seed)
    layers = [Conv2D(3, 8, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2)]
    layers += [Conv2D(8, 16, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2), Flatten()]
    layers.append(Dense(16 * 8 * 8, 4, rng=rng, init="glorot"))
    return Sequential(layers, input_shape=(3, 32, 32))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small CNN trained for a second on 4 synthetic classes (about 90% test accuracy)."""
    ds = synthetic(num_classes=4, per_class=80, image_size=32, seed=1)
    model = tiny_cnn(0)
    model.class_names = ["circle", "square", "ring", "cross, plus"]
    model.mean, model.std = channel_stats(ds.train)
    opt = minicnn.Adam(model.parameters(), lr=3e-3)
    minicnn.fit(model, minicnn.SoftmaxCrossEntropy(), opt, ds.train, None, epochs=8,
                batch_size=16, progress=False, print_fn=None)  # fmt: skip
    assert minicnn.evaluate(model, ds.test)["accuracy"] > 0.7
    path = tmp_path_factory.mktemp("explain") / "model.npz"
    minicnn.save(model, path)
    return model, ds, path


def test_sanity_check_randomised_weights_change_the_map(trained):
    """Adebayo et al. 2018: a map that explains the model must change when its weights do.

    The bound 0.3: the Grad-CAM maps of 24 test images under the trained weights and under
    re-drawn ones correlate by 0.06 or less on average (|r| over 8 random draws, measured),
    while a 5% perturbation of the trained weights keeps 0.74, and a map that ignored the
    weights (an edge detector, the image itself) would keep 1. So 0.3 separates "depends on
    what was learned" from "does not" with room on both sides; the second assert proves the
    measure can be high.
    """
    model, ds, _ = trained
    images = ds.test.images[:24]
    target = model.predict(images)
    cam = explain.grad_cam(model, images, target=target)
    random = tiny_cnn(1)
    random.mean, random.std = model.mean, model.std
    assert correlation(cam, explain.grad_cam(random, images, target=target)).mean() < 0.3
    rng = np.random.default_rng(5)
    saved = [p.data.copy() for p in model.parameters()]
    for p in model.parameters():  # 5% of each parameter's spread: the same model, nearly
        p.data = p.data + 0.05 * p.data.std() * rng.standard_normal(p.data.shape)
    try:
        assert correlation(cam, explain.grad_cam(model, images, target=target)).mean() > 0.5
    finally:
        for p, data in zip(model.parameters(), saved):
            p.data = data


def test_bad_input_is_refused_clearly():
    model = small_net(False)
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match=r"layer #3 Flatten\(\) gives \(27,\), not a \(C, H, W\)"):
        explain.grad_cam(model, x, layer=3)
    with pytest.raises(ValueError, match=r"layer #4 Dense.* not a \(C, H, W\) map"):
        explain.feature_maps(model, x, -1)
    with pytest.raises(ValueError, match=r"layer 9 is out of range: the model has 5 layers"):
        explain.grad_cam(model, x, layer=9)
    with pytest.raises(ValueError, match=r"target class 4 is out of range: .* 4 classes \(0..3\)"):
        explain.saliency(model, x, target=4)
    with pytest.raises(ValueError, match=r"target class -1 is out of range"):
        explain.occlusion(model, x, target=-1)
    with pytest.raises(ValueError, match=r"layer #1 ReLU\(\) has no filters; .* are #0"):
        explain.filters(model, 1)
    with pytest.raises(ValueError, match="patch and stride"):
        explain.occlusion(model, x, patch=0)
    dense_only = Sequential([Flatten(), Dense(72, 3)], input_shape=(2, 6, 6)).astype(np.float64)
    with pytest.raises(ValueError, match="Grad-CAM needs a convolutional layer"):
        explain.grad_cam(dense_only, x)
    x = np.random.default_rng(6).standard_normal((2, 2, 6, 6))
    sal = explain.saliency(dense_only, x, target=1)  # |W[:, 1]| as an image, the same for both
    w = np.abs(dense_only[1].W.data[:, 1]).reshape(2, 6, 6).max(axis=0)
    np.testing.assert_allclose(sal, np.broadcast_to(w / w.max(), (2, 6, 6)), atol=1e-12)
    assert explain.occlusion(dense_only, x, patch=3, stride=3).shape == (2, 6, 6)


def test_filters_and_uint8_images_as_predict_takes_them(trained):
    model, ds, _ = trained
    np.testing.assert_array_equal(explain.filters(model), model[0].W.data)
    assert explain.filters(model, 3).shape == (16, 8, 3, 3)
    images = ds.test.images[:5]  # uint8: normalised with the model's mean and std
    np.testing.assert_allclose(
        explain.grad_cam(model, images), explain.grad_cam(model, model.preprocess(images))
    )
    maps = explain.saliency(model, images)
    assert maps.shape == (5, 32, 32) and maps.min() >= 0
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1)


def test_colour_map_and_overlay():
    ends = plots.colormap(np.array([0.0, 1.0, 2.0, -1.0]))  # clipped to [0, 1]
    np.testing.assert_array_equal(ends, [[68, 1, 84], [253, 231, 37], [253, 231, 37], [68, 1, 84]])
    ramp = plots.colormap(np.linspace(0, 1, 64)).astype(float)
    luma = ramp @ [0.299, 0.587, 0.114]
    assert np.all(np.diff(luma) > 1)  # viridis gets lighter all the way: ordered in gray too
    image = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(3, 2, 4) * 10
    heat = np.linspace(0, 1, 8).reshape(2, 4)
    same = np.asarray(plots.overlay(image, heat, alpha=0.0))
    np.testing.assert_array_equal(same, image.transpose(1, 2, 0))
    np.testing.assert_array_equal(np.asarray(plots.overlay(image, heat, 1.0)), plots.colormap(heat))
    assert plots.overlay(image[:1], heat, scale=3).size == (12, 6)  # gray in, RGB out


def test_explain_command_writes_a_picture_per_image_and_an_index(trained, tmp_path, capsys):
    model, ds, path = trained
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(ds.test.images[0].transpose(1, 2, 0)).save(folder / "a.png")
    Image.fromarray(ds.test.images[1].transpose(1, 2, 0)).save(folder / "sub" / "b.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    assert main(["explain", str(path), str(folder), "--out", str(out)]) == 1  # one skipped
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "1 of 3 images could not be read" in captured.err
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["a.gradcam.png", "sub_b.gradcam.png"]
    assert sorted(p.name for p in out.iterdir()) == [pngs[0], "index.html", pngs[1]]  # no .tmp
    index = (out / "index.html").read_text()
    for name in pngs:
        assert f'src="{name}"' in index
    assert "sub/b.jpg" in index
    probs = model.predict_proba(ds.test.images[:1])[0]
    label = model.class_names[probs.argmax()]
    assert f"a.png<br>{label}  {probs.max():.1%}" in index
    with Image.open(out / "a.gradcam.png") as picture:
        assert picture.size == (2 * 192 + 300, 192 + 64)  # 32x32 drawn 6x: image, overlay, text

    one = tmp_path / "one"
    args = ["explain", str(path), str(folder / "a.png"), "--method", "occlusion", "--out", str(one)]
    assert main(args + ["--target", "cross"]) == 0  # a class name's comma-separated part
    assert sorted(p.name for p in one.iterdir()) == ["a.occlusion.png"]  # a file: no index


def test_explain_and_filters_commands_refuse_bad_input_in_one_line(trained, tmp_path, capsys):
    _, ds, path = trained
    image = tmp_path / "a.png"
    Image.fromarray(ds.test.images[0].transpose(1, 2, 0)).save(image)
    out = str(tmp_path / "out")
    assert main(["explain", str(path), str(image), "--target", "9", "--out", out]) == 1
    assert "error: target class 9 is out of range" in capsys.readouterr().err
    assert main(["explain", str(path), str(image), "--target", "dog", "--out", out]) == 1
    assert "error: no class is called 'dog'; give" in capsys.readouterr().err
    assert main(["explain", str(path), str(image), "--target", "sqare", "--out", out]) == 1
    assert "error: no class is called 'sqare' (did you mean 'square'?)" in capsys.readouterr().err
    assert main(["explain", str(path), str(image), "--layer", "6", "--out", out]) == 1
    assert "error: layer #6 Flatten() gives (1024,)" in capsys.readouterr().err
    png = tmp_path / "f.png"
    assert main(["filters", str(path), "--out", str(png)]) == 0
    with Image.open(png) as picture:
        assert picture.size[0] >= 8 * (24 + 2)  # 8 RGB filters of 3x3, 24 pixels each
    assert main(["filters", str(path), "--layer", "1"]) == 1
    assert "error: layer #1 ReLU() has no filters" in capsys.readouterr().err
