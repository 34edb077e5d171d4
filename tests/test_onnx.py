"""ONNX export and import: ONNX Runtime computes what minicnn computes, and graphs built here
by hand import as the layers they describe.

The bound: probabilities within 1e-5 absolute. Both engines compute in float32 and sum in
different orders (im2col with OpenBLAS or Winograd here, MLAS there), so logits differ by a
few units in the last place of float32, about 1e-6 of their size; a probability moves by at
most a quarter of a logit's change (the slope of a sigmoid, and of a softmax coordinate), so
the observed differences are near 1e-6 and 1e-5 leaves a margin of ten.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from minicnn.layers.nested import walk  # noqa: E402
from minicnn.onnx import OnnxError  # noqa: E402

MODELS = sorted((Path(__file__).resolve().parent.parent / "examples" / "models").glob("*.npz"))
TOL = 1e-5


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path, x):
    s = session(path)
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def images(C, S, n=6, seed=0):
    """Real-looking uint8 images: the generated shapes set (smooth regions, edges, noise)."""
    ds = minicnn.data.synthetic(num_classes=n, per_class=3, image_size=S, seed=seed, channels=C)
    return ds.train.images[:n]


def randomized(model, seed=1):
    """A model whose BatchNorm statistics and biases are not the initial ones."""
    rng = np.random.default_rng(seed)
    for layer in model:
        if isinstance(layer, minicnn.BatchNorm2D | minicnn.BatchNorm1D):
            C = layer.num_features
            layer.running_mean = rng.normal(0, 0.2, C).astype(np.float32)
            layer.running_var = rng.uniform(0.5, 2.0, C).astype(np.float32)
            layer.gamma.data = rng.uniform(0.5, 1.5, C).astype(np.float32)
            layer.beta.data = rng.normal(0, 0.2, C).astype(np.float32)
        for p in layer.parameters():
            if p.data.ndim == 1 and not isinstance(layer, minicnn.BatchNorm2D):
                p.data = rng.normal(0, 0.1, p.shape).astype(np.float32)
    model.mean = np.full(model.input_shape[0], 0.45, np.float32)
    model.std = np.full(model.input_shape[0], 0.25, np.float32)
    return model


PRESETS = [
    ("paper", dict(image_size=32)),
    ("paper13", dict(image_size=32)),
    ("paper_bn", dict(image_size=32)),
]


@pytest.mark.parametrize("output,classes", [("softmax", 5), ("sigmoid", 2)])
@pytest.mark.parametrize("preset,kw", PRESETS, ids=[p for p, _ in PRESETS])
def test_presets_run_in_onnx_runtime_as_in_minicnn(preset, kw, output, classes, tmp_path):
    model = randomized(getattr(minicnn.models, preset)(num_classes=classes, output=output, **kw))
    model.class_names = [f"c{i}" for i in range(classes)]
    path = tmp_path / "m.onnx"
    proto = minicnn.onnx.export(model, path)
    x = images(3, kw["image_size"])
    expected = model.predict_proba(x)
    got = run(path, x)
    assert got.shape == (len(x), classes)
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOL)
    assert proto.opset_import[0].version == 17
    assert {n.op_type for n in proto.graph.node} >= {"Conv", "Relu", "MaxPool", "Gemm"}
    if preset == "paper_bn":  # BatchNorm kept as a node, the model's own parameters
        assert "BatchNormalization" in {n.op_type for n in proto.graph.node}
    back = minicnn.onnx.load(path)  # the round trip: same outputs, same parameters
    np.testing.assert_array_equal(back.predict_proba(x), expected)
    assert back.output == output and back.class_names == model.class_names
    assert len(back.parameters()) == len(model.parameters())
    for a, b in zip(back.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    bns = [(a, b) for a, b in zip(back, [m for m in model if not isinstance(m, minicnn.Dropout)])]
    for a, b in bns:
        assert type(a) is type(b)
        if isinstance(a, minicnn.BatchNorm2D):
            np.testing.assert_array_equal(a.running_var, b.running_var)


@pytest.mark.parametrize("output,classes", [("softmax", 5), ("sigmoid", 2)])
def test_residual_networks_run_in_onnx_runtime_as_in_minicnn(output, classes, tmp_path):
    """Each Residual as its branch and shortcut, Add, Relu."""
    model = minicnn.models.paper_res(num_classes=classes, output=output, image_size=32)
    rng = np.random.default_rng(2)
    for block in model:
        for layer in getattr(block, "branch", []):
            if isinstance(layer, minicnn.BatchNorm2D):
                layer.running_mean = rng.normal(0, 0.2, layer.num_features).astype(np.float32)
                layer.running_var = rng.uniform(0.5, 2, layer.num_features).astype(np.float32)
    proto = minicnn.onnx.export(randomized(model), tmp_path / "m.onnx")
    assert "Add" in {n.op_type for n in proto.graph.node}
    x = images(3, 32)
    expected = model.predict_proba(x)
    np.testing.assert_allclose(run(tmp_path / "m.onnx", x), expected, atol=TOL)
    back = minicnn.onnx.load(tmp_path / "m.onnx")  # the round trip: the same blocks
    np.testing.assert_array_equal(back.predict_proba(x), expected)
    assert back.output == output
    kept = [type(a) for _, a in walk(model.layers) if not isinstance(a, minicnn.Dropout)]
    assert [type(a) for _, a in walk(back.layers)] == kept  # Dropout: not in the graph
    for a, b in zip(walk(back.layers), walk(model.layers)):
        if isinstance(b[1], minicnn.Residual):
            assert a[1].activation == b[1].activation == "relu"
            assert (a[1].shortcut is None) == (b[1].shortcut is None)
    for a, b in zip(back.parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_shipped_models_export_with_their_decision_rule(path, tmp_path):
    model = minicnn.load(path)
    C, S, _ = model.input_shape
    out = tmp_path / "m.onnx"
    proto = minicnn.onnx.export(model, out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    x = images(C, S, n=4)
    np.testing.assert_allclose(run(out, x), model.predict_proba(x), rtol=0, atol=TOL)
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["minicnn.class_names"] == model.class_names
    np.testing.assert_allclose(meta["minicnn.mean"], model.mean)
    assert meta["minicnn.input_shape"] == [C, S, S] and "uint8" in meta["minicnn.input"]
    assert meta["minicnn.version"] == minicnn.__version__
    if len(model.class_names) == 2:
        assert meta["minicnn.positive_class"] == model.class_names[1]
        assert meta["minicnn.threshold"] == (model.threshold or 0.5)
        assert meta["minicnn.threshold_chosen"] is (model.threshold is not None)
        assert minicnn.onnx.load(out).threshold == model.threshold
    else:
        assert "minicnn.threshold" not in meta


def test_metadata_normalisation_takes_the_normalised_batch(tmp_path):
    model = minicnn.load(MODELS[0])
    path = tmp_path / "m.onnx"
    proto = minicnn.onnx.export(model, path, normalize="metadata", opset=18)
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert proto.opset_import[0].version == 18
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N"  # any batch size
    x = images(1, 64, n=3)
    np.testing.assert_allclose(run(path, model.preprocess(x)), model.predict_proba(x), atol=TOL)
    back = minicnn.onnx.load(path)  # mean and std come back from metadata_props
    np.testing.assert_array_equal(back.mean, model.mean)
    np.testing.assert_array_equal(back.predict_proba(x), model.predict_proba(x))


def test_every_layer_exports_including_batchnorm1d_and_average_pooling(tmp_path):
    rng = np.random.default_rng(0)
    layers = [
        minicnn.Conv2D(2, 4, 3, stride=2, padding=1, rng=rng),
        minicnn.BatchNorm2D(4),
        minicnn.ReLU(),
        minicnn.AvgPool2D(2, stride=1),
        minicnn.Conv2D(4, 3, 1, bias=False, rng=rng),
        minicnn.MaxPool2D(2),
        minicnn.Flatten(),
        minicnn.Dense(12, 6, rng=rng),
        minicnn.BatchNorm1D(6),
        minicnn.Dropout(0.5),
        minicnn.Sigmoid(),
        minicnn.Dense(6, 3, rng=rng),
    ]
    model = randomized(minicnn.Sequential(layers, input_shape=(2, 11, 11), output="sigmoid"))
    model.mean = None  # then preprocess is pixels / 255 only
    minicnn.onnx.export(model, tmp_path / "m.onnx")
    x = rng.integers(0, 256, (5, 2, 11, 11), dtype=np.uint8)
    np.testing.assert_allclose(run(tmp_path / "m.onnx", x), model.predict_proba(x), atol=TOL)
    back = minicnn.onnx.load(tmp_path / "m.onnx")
    assert [type(a) for a in back] == [type(b) for b in layers if type(b) is not minicnn.Dropout]
    assert back.mean is None
    np.testing.assert_allclose(back.predict_proba(x), model.predict_proba(x), atol=1e-7)


def test_export_refuses_an_unknown_input_size_and_writes_nothing_half(tmp_path):
    model = minicnn.Sequential([minicnn.Flatten(), minicnn.Dense(12, 2)])
    with pytest.raises(ValueError, match="input size is unknown"):
        minicnn.onnx.export(model, tmp_path / "m.onnx")
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")

    class Tanh(minicnn.Layer):
        pass

    model = minicnn.Sequential([Tanh(), minicnn.Flatten()], input_shape=(1, 2, 2))
    with pytest.raises(TypeError, match="Tanh"):
        minicnn.onnx.export(model, target)
    with pytest.raises(ValueError, match="opset"):
        minicnn.onnx.export(minicnn.load(MODELS[0]), target, opset=13)
    blocked = tmp_path / "file" / "m.onnx"  # a folder on the way is a file: cannot write
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="cannot write"):
        minicnn.onnx.export(minicnn.load(MODELS[0]), blocked)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "m.onnx"]  # no temporary


def test_import_minicnn_imports_neither_onnx_nor_onnxruntime():
    code = (
        "import sys, minicnn, minicnn.onnx\n"
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "sys.modules['onnx'] = None  # as if the extra were not installed\n"
        "try:\n"
        "    minicnn.onnx.export(minicnn.models.paper(num_classes=2), 'x.onnx')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install minicnn[onnx]" in out.stdout


# ----------------------------------------------------------------- graphs built by hand


def graph_model(nodes, x_shape, initializers, opset=17, inputs=None, out_shape=("N", 3, 4, 4)):
    """An onnx model of `nodes` from input "x" (float, batch axis N) to output "y"."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *x_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    inits = [numpy_helper.from_array(np.asarray(a), name) for name, a in initializers.items()]
    graph = helper.make_graph(nodes, "hand", inputs or [x], [y], initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def save_graph(tmp_path, *args, **kw):
    path = tmp_path / "hand.onnx"
    onnx.save(graph_model(*args, **kw), path)
    return path


def conv_by_hand(x, W, b, stride, pads):
    """Cross-correlation of x (N, C, H, W) with W (F, C, k, k), zero pads (t, l, b, r)."""
    t, lft, bot, r = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, bot), (lft, r)))
    k = W.shape[2]
    H_out = (xp.shape[2] - k) // stride + 1
    W_out = (xp.shape[3] - k) // stride + 1
    out = np.zeros((len(x), len(W), H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, W) + b
    return out


RNG = np.random.default_rng(3)
XS = RNG.standard_normal((2, 2, 7, 7)).astype(np.float32)


@pytest.mark.parametrize("transB", [0, 1])
def test_gemm_with_transB_alpha_and_beta(transB, tmp_path):
    W = RNG.standard_normal((8, 3)).astype(np.float32)  # (in, out)
    c = RNG.standard_normal(3).astype(np.float32)
    B = W.T.copy() if transB else W
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "B", "C"], ["y"], transB=transB, alpha=0.5, beta=2.0),
    ]
    path = save_graph(tmp_path, nodes, (2, 2, 2), {"B": B, "C": c}, out_shape=["N", 3])
    x = XS[:, :, :2, :2].copy()
    expected = 0.5 * x.reshape(2, -1).astype(np.float64) @ W + 2.0 * c
    model = minicnn.onnx.load(path)
    assert [type(layer) for layer in model] == [minicnn.Flatten, minicnn.Dense]
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(path, x), expected, rtol=1e-5, atol=1e-5)


def test_asymmetric_pads_that_reach_no_window(tmp_path):
    """pads (1, 1, 2, 2), stride 2, on 7x7: the last row and column of padding are never
    read, so Conv2D(padding=1) computes the same 4x4."""
    W = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    node = helper.make_node("Conv", ["x", "W", "b"], ["y"], strides=[2, 2], pads=[1, 1, 2, 2])
    path = save_graph(tmp_path, [node], (2, 7, 7), {"W": W, "b": b})
    expected = conv_by_hand(XS, W, b, 2, (1, 1, 2, 2))
    assert expected.shape == (2, 3, 4, 4)
    model = minicnn.onnx.load(path)
    assert model[0].pad == 1 and model[0].stride == 2
    np.testing.assert_allclose(model.forward(XS), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run(path, XS), expected, rtol=1e-5, atol=1e-5)


def test_pads_minicnn_cannot_represent_are_refused(tmp_path):
    W = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])
    for attrs in (dict(pads=[0, 0, 1, 1]), dict(auto_pad="SAME_UPPER")):  # TF's "same", s=2
        node = helper.make_node("Conv", ["x", "W"], ["y"], name="c1", strides=[2, 2], **attrs)
        path = save_graph(tmp_path, [node], (2, 6, 6), {"W": W}, inputs=[x])
        with pytest.raises(OnnxError, match=r"Conv node 'c1': pads \[0, 0, 1, 1\].*alike"):
            minicnn.onnx.load(path)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad(auto_pad, tmp_path):
    W = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "W"], ["y"], auto_pad=auto_pad)
    path = save_graph(tmp_path, [node], (2, 7, 7), {"W": W})
    p = 0 if auto_pad == "VALID" else 1
    expected = conv_by_hand(XS, W, 0.0, 1, (p, p, p, p))
    model = minicnn.onnx.load(path)
    assert model[0].b is None and model[0].pad == p
    np.testing.assert_allclose(model.forward(XS), expected, rtol=1e-5, atol=1e-5)


def test_pytorch_flatten_pattern_and_matmul_add(tmp_path):
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape folds to a flatten; MatMul + Add to
    a Dense; the GlobalAveragePool + Squeeze before them to GlobalAvgPool2D."""
    W = RNG.standard_normal((2, 4)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Shape", ["p"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["p", "target"], ["f"]),
        helper.make_node("MatMul", ["f", "Wt"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["z"]),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    consts = {"zero": np.array(0), "axes0": np.array([0]), "minus_one": np.array([-1]),
              "Wt": np.tile(W, (9, 1)), "b": b}  # fmt: skip
    path = save_graph(tmp_path, nodes, (2, 7, 7), consts, out_shape=["N", 4])
    model = minicnn.onnx.load(path)
    assert [type(layer) for layer in model] == [minicnn.MaxPool2D, minicnn.Flatten, minicnn.Dense]
    assert model.output == "softmax"
    pooled = np.stack(
        [XS[:, :, i : i + 3, j : j + 3].max(axis=(2, 3)) for i in (0, 2, 4) for j in (0, 2, 4)],
        axis=-1,
    )  # fmt: skip  (N, C, 9)
    logits = pooled.reshape(2, -1) @ np.tile(W, (9, 1)) + b
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(XS), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(path, XS), expected, rtol=1e-5, atol=1e-6)


def test_global_average_pool_then_squeeze(tmp_path):
    W = RNG.standard_normal((2, 3)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Squeeze", ["g", "axes"], ["f"]),
        helper.make_node("Gemm", ["f", "W"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["y"]),
    ]
    consts = {"axes": np.array([2, 3]), "W": W}
    path = save_graph(tmp_path, nodes, (2, 7, 7), consts, out_shape=["N", 3])
    model = minicnn.onnx.load(path)
    assert [type(layer) for layer in model] == [minicnn.GlobalAvgPool2D, minicnn.Dense]
    assert model.output == "sigmoid"
    expected = 1 / (1 + np.exp(-(XS.mean(axis=(2, 3)) @ W)))
    np.testing.assert_allclose(model.predict_proba(XS), expected, rtol=1e-5)


def test_keras_layout_through_tf2onnx(tmp_path):
    """An NHWC input transposed to NCHW for the Conv, transposed back before the flatten
    (Keras flattens H, W, C): the model takes (N, C, H, W), the Dense rows are reordered."""
    W = RNG.standard_normal((3, 2, 3, 3)).astype(np.float32)
    Wd = RNG.standard_normal((75, 4)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["h"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["h", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "Wd"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
    ]
    consts = {"W": W, "Wd": Wd, "b": b, "shape": np.array([-1, 75])}
    path = save_graph(tmp_path, nodes, (5, 5, 2), consts, out_shape=["N", 4])
    x = XS[:, :, :5, :5].transpose(0, 2, 3, 1).copy()  # (N, H, W, C)
    model = minicnn.onnx.load(path)
    assert model.input_shape == (2, 5, 5)
    maps = np.maximum(conv_by_hand(x.transpose(0, 3, 1, 2), W, 0.0, 1, (1, 1, 1, 1)), 0)
    expected = maps.transpose(0, 2, 3, 1).reshape(2, -1) @ Wd + b
    np.testing.assert_allclose(model.forward(x.transpose(0, 3, 1, 2).copy()), expected, rtol=1e-4)
    np.testing.assert_allclose(run(path, x), expected, rtol=1e-4)


# ----------------------------------------------------------------- bad input


def conv_graph(tmp_path, W=None, opset=17, **attrs):
    W = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32) if W is None else W
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="conv1", **attrs)
    return save_graph(tmp_path, [node], (2, 7, 7), {"W": W}, opset=opset)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    good = conv_graph(tmp_path).read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(OnnxError, match="cut.onnx is not a readable ONNX model"):
        minicnn.onnx.load(cut)
    text = tmp_path / "notes.onnx"
    text.write_text("hello, this is not a model\n" * 10)
    with pytest.raises(OnnxError, match="notes.onnx is not a readable ONNX model"):
        minicnn.onnx.load(text)
    with pytest.raises(OnnxError, match="npz is not a readable ONNX model"):
        minicnn.onnx.load(MODELS[0])
    with pytest.raises(FileNotFoundError, match="no such file"):
        minicnn.onnx.load(tmp_path / "missing.onnx")


def test_two_inputs_old_opsets_and_convolutions_minicnn_has_not(tmp_path):
    a, b = (helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2, 7, 7]) for n in "ab")
    node = helper.make_node("Add", ["a", "b"], ["y"])
    path = save_graph(tmp_path, [node], (2, 7, 7), {}, inputs=[a, b])
    with pytest.raises(OnnxError, match=r"2 inputs \('a', 'b'\)"):
        minicnn.onnx.load(path)
    with pytest.raises(OnnxError, match="opset 9 is older"):
        minicnn.onnx.load(conv_graph(tmp_path, opset=9))
    W = RNG.standard_normal((4, 1, 3, 3)).astype(np.float32)
    depthwise = "Conv node 'conv1': group 2: grouped and depthwise convolutions are not supported"
    with pytest.raises(OnnxError, match=depthwise):
        minicnn.onnx.load(conv_graph(tmp_path, W=W, group=2))
    with pytest.raises(OnnxError, match=r"dilations \[2, 2\].*not supported yet"):
        minicnn.onnx.load(conv_graph(tmp_path, dilations=[2, 2]))


def test_initializers_that_contradict_their_node(tmp_path):
    W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)  # 3 input channels, x has 2
    with pytest.raises(OnnxError, match=r"Conv node 'conv1': weight 'W' has shape \(4, 3, 3, 3\)"):
        minicnn.onnx.load(conv_graph(tmp_path, W=W))
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"]),
        helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1),
    ]
    B = np.zeros((3, 97), np.float32)  # transB: (out, in), in should be 98
    path = save_graph(tmp_path, nodes, (2, 7, 7), {"B": B})
    with pytest.raises(OnnxError, match=r"Gemm node 'fc': B 'B' has shape \(97, 3\)"):
        minicnn.onnx.load(path)


def test_a_fork_is_a_residual_block_and_unknown_ops_are_named(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Add", ["x", "r"], ["y"], name="skip"),
    ]
    model = minicnn.onnx.load(save_graph(tmp_path, nodes, (2, 7, 7), {}))  # x + relu(x)
    (block,) = model.layers
    assert isinstance(block, minicnn.Residual) and block.shortcut is None
    assert block.activation is None and [type(a) for a in block.branch] == [minicnn.ReLU]
    np.testing.assert_array_equal(model.forward(XS), XS + np.maximum(XS, 0))
    nodes[1] = helper.make_node("Mul", ["x", "r"], ["y"], name="gate")
    with pytest.raises(OnnxError, match="'x' is read by two nodes whose paths meet at Mul node "
                       "'gate'; minicnn imports a fork only as a residual block"):  # fmt: skip
        minicnn.onnx.load(save_graph(tmp_path, nodes, (2, 7, 7), {}))
    nodes = [helper.make_node("Tanh", ["x"], ["y"], name="t")]
    with pytest.raises(OnnxError, match="Tanh node 't': op Tanh is not one minicnn can import"):
        minicnn.onnx.load(save_graph(tmp_path, nodes, (2, 7, 7), {}))


def bn_by_hand(x, scale, bias, mean, var, eps=1e-5):
    shape = (1, -1, 1, 1)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(
        shape
    ) + bias.reshape(shape)


def bn_inits(prefix, F, rng):
    return {f"{prefix}.{n}": v.astype(np.float32) for n, v in (
        ("scale", rng.uniform(0.5, 1.5, F)), ("B", rng.normal(0, 0.2, F)),
        ("mean", rng.normal(0, 0.2, F)), ("var", rng.uniform(0.5, 2, F)))}  # fmt: skip


def bn_node(prefix, x, y):
    names = [f"{prefix}.{n}" for n in ("scale", "B", "mean", "var")]
    return helper.make_node("BatchNormalization", [x, *names], [y], name=prefix)


def test_torch_like_basic_block_with_the_identity_shortcut(tmp_path):
    """torchvision's BasicBlock in evaluation: conv-bn-relu-conv-bn, out += x, relu."""
    rng = np.random.default_rng(5)
    C = 4
    W1, W2 = (rng.normal(0, 0.3, (C, C, 3, 3)).astype(np.float32) for _ in range(2))
    inits = {"W1": W1, "W2": W2, **bn_inits("bn1", C, rng), **bn_inits("bn2", C, rng)}
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1] * 4),
        bn_node("bn1", "c1", "b1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "W2"], ["c2"], name="conv2", pads=[1] * 4),
        bn_node("bn2", "c2", "b2"),
        helper.make_node("Add", ["b2", "x"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu2"),
    ]
    path = save_graph(tmp_path, nodes, (C, 6, 6), inits, out_shape=("N", C, 6, 6))
    model = minicnn.onnx.load(path)
    (block,) = model.layers
    assert [type(a).__name__ for a in block.branch] == [
        "Conv2D", "BatchNorm2D", "ReLU", "Conv2D", "BatchNorm2D"]  # fmt: skip
    assert block.shortcut is None and block.activation == "relu"
    x = RNG.standard_normal((2, C, 6, 6)).astype(np.float32)
    zero = np.zeros(C)
    h = np.maximum(bn_by_hand(conv_by_hand(x, W1, zero, 1, [1] * 4), *(inits[f"bn1.{n}"] for n in (
        "scale", "B", "mean", "var"))), 0)  # fmt: skip
    z = bn_by_hand(conv_by_hand(h, W2, zero, 1, [1] * 4),
                   *(inits[f"bn2.{n}"] for n in ("scale", "B", "mean", "var")))  # fmt: skip
    np.testing.assert_allclose(model.forward(x), np.maximum(z + x, 0), atol=1e-5)
    np.testing.assert_allclose(run(path, x), np.maximum(z + x, 0), atol=1e-5)


def test_torch_like_block_with_a_projection_and_folded_batchnorm(tmp_path):
    """As torch.onnx writes a strided block in evaluation (BatchNorm folded into the Conv's
    weights and bias), the shortcut first, then pooled into a Gemm head."""
    rng = np.random.default_rng(6)
    C, F = 3, 5
    W1 = rng.normal(0, 0.3, (F, C, 3, 3)).astype(np.float32)
    W2 = rng.normal(0, 0.3, (F, F, 3, 3)).astype(np.float32)
    Ws = rng.normal(0, 0.3, (F, C, 1, 1)).astype(np.float32)
    b1, b2, bs = (rng.normal(0, 0.2, F).astype(np.float32) for _ in range(3))
    Wfc, bfc = rng.normal(0, 0.3, (2, F)).astype(np.float32), np.float32([0.1, -0.2])
    inits = dict(W1=W1, W2=W2, Ws=Ws, b1=b1, b2=b2, bs=bs, Wfc=Wfc, bfc=bfc)
    nodes = [
        helper.make_node("Conv", ["x", "Ws", "bs"], ["sc"], name="down", strides=[2, 2]),
        helper.make_node(
            "Conv", ["x", "W1", "b1"], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]
        ),  # fmt: skip
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "W2", "b2"], ["c2"], name="conv2", pads=[1] * 4),
        helper.make_node("Add", ["c2", "sc"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["o"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["o"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "Wfc", "bfc"], ["y"], name="fc", transB=1),
    ]
    path = save_graph(tmp_path, nodes, (C, 8, 8), inits, out_shape=("N", 2))
    model = minicnn.onnx.load(path)
    block = model.layers[0]
    assert [type(a).__name__ for a in block.branch] == ["Conv2D", "ReLU", "Conv2D"]
    assert [(type(a).__name__, a.stride) for a in block.shortcut] == [("Conv2D", 2)]
    x = RNG.standard_normal((3, C, 8, 8)).astype(np.float32)
    h = np.maximum(conv_by_hand(x, W1, b1, 2, [1] * 4), 0)
    z = conv_by_hand(h, W2, b2, 1, [1] * 4) + conv_by_hand(x, Ws, bs, 2, [0] * 4)
    logits = np.maximum(z, 0).mean(axis=(2, 3)) @ Wfc.T + bfc
    np.testing.assert_allclose(model.forward(x), logits, atol=1e-5)
    np.testing.assert_allclose(run(path, x), logits, atol=1e-5)
    nodes[5] = helper.make_node("Sigmoid", ["s"], ["o"], name="gate")  # not the activation
    model = minicnn.onnx.load(save_graph(tmp_path, nodes, (C, 8, 8), inits, out_shape=("N", 2)))
    assert model.layers[0].activation is None
    assert type(model.layers[1]).__name__ == "Sigmoid"


def test_folding_cannot_grow_past_the_file(tmp_path):
    """Constants that double 40 times would take terabytes: refused at the node that grows."""
    nodes = [helper.make_node("Concat", ["c0", "c0"], ["c1"], axis=0, name="grow1")]
    nodes += [
        helper.make_node("Concat", [f"c{i}", f"c{i}"], [f"c{i + 1}"], axis=0, name=f"grow{i + 1}")
        for i in range(1, 40)
    ]
    nodes.append(helper.make_node("Reshape", ["x", "c40"], ["y"]))
    path = save_graph(tmp_path, nodes, (2, 7, 7), {"c0": np.ones(1, np.int64)})
    with pytest.raises(OnnxError, match="Concat node 'grow17': folds to 131,072 values"):
        minicnn.onnx.load(path)


# ----------------------------------------------------------------- an imported model is a model


def test_imported_model_trains_saves_and_explains(tmp_path):
    source = randomized(minicnn.models.paper_bn(num_classes=3, image_size=32))
    minicnn.onnx.export(source, tmp_path / "m.onnx")
    model = minicnn.onnx.load(tmp_path / "m.onnx")
    minicnn.save(model, tmp_path / "m.npz")
    again = minicnn.load(tmp_path / "m.npz")
    x = images(3, 32, n=6)
    np.testing.assert_array_equal(again.predict_proba(x), model.predict_proba(x))
    heatmaps = minicnn.explain.grad_cam(model, x[:2])
    assert heatmaps.shape[0] == 2 and np.isfinite(heatmaps).all()
    before = [p.data.copy() for p in model.parameters()]
    loss, opt = minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters(), lr=1e-3)
    xf, y = model.preprocess(x), np.arange(6) % 3
    for _ in range(2):
        loss.forward(model.forward(xf, training=True), y)
        model.backward(loss.backward())
        opt.step()
    assert all(not np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))


def test_cli_export(tmp_path, capsys):
    import argparse

    from minicnn.cli.common import CommandError
    from minicnn.cli.export import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    out = tmp_path / "m.onnx"
    args = parser.parse_args(["export", str(MODELS[0]), str(out)])
    assert args.run(args) == 0
    assert "input 'images' uint8 images (N, 1, 64, 64)" in capsys.readouterr().out
    assert minicnn.onnx.load(out).class_names == minicnn.load(MODELS[0]).class_names
    args = parser.parse_args(["export", str(MODELS[0]), str(out), "--opset", "12"])
    with pytest.raises(CommandError, match="opset must be 17"):
        args.run(args)
    bad = tmp_path / "bad.npz"
    bad.write_text("x")
    args = parser.parse_args(["export", str(bad), str(out)])
    with pytest.raises(minicnn.io.ModelFileError):
        args.run(args)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")  # torch's
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_model_exported_by_pytorch(dynamo, tmp_path):
    """Both of torch.onnx's exporters: the TorchScript one writes the flatten as Shape ->
    Gather -> Unsqueeze -> Concat -> Reshape; torch.export's writes AdaptiveAvgPool2d(1) as
    ReduceMean. Skips without torch (or, for dynamo, without onnxscript)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1, bias=False),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(8, 6, 3, stride=2, padding=1),
                nn.ReLU(),
            )
            self.pool = nn.AdaptiveAvgPool2d(1) if dynamo else nn.AvgPool2d(2)
            self.fc = nn.Linear(6 if dynamo else 6 * 2 * 2, 5)

        def forward(self, x):
            x = self.pool(self.features(x))
            return self.fc(x.view(x.size(0), -1))

    net = Net().eval()
    with torch.no_grad():
        net.features[1].running_mean.uniform_(-0.2, 0.2)
        net.features[1].running_var.uniform_(0.5, 2.0)
        net.features[1].bias.uniform_(-0.2, 0.2)
    x = torch.from_numpy(images(3, 16, n=4).astype(np.float32) / 255)
    path = tmp_path / "torch.onnx"
    if dynamo:
        pytest.importorskip("onnxscript")
        dims = ({0: torch.export.Dim("N")},)
        torch.onnx.export(net, (x,), str(path), dynamo=True, dynamic_shapes=dims, verbose=False)
    else:
        torch.onnx.export(net, (x,), str(path), opset_version=17, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})  # fmt: skip
    model = minicnn.onnx.load(path)
    with torch.no_grad():
        expected = net(x).numpy()
    assert model.output == "softmax"  # logits at the output: read as a softmax head
    np.testing.assert_allclose(model.forward(x.numpy()), expected, rtol=1e-4, atol=1e-5)


def test_benchmark_table_gives_the_ratio_of_onnx_runtime_to_minicnn():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_onnx

    def row(system, ips):
        ms = 1000 * 32 / ips
        return dict(preset="paper", batch=32, system=system, images_per_s=ips, median_ms=ms,
                    p25_ms=ms, p75_ms=ms)  # fmt: skip

    table = bench_onnx.report(
        [{"threads": 2, "rows": [row("minicnn", 800), row("onnxruntime", 1600)]}]
    )
    assert table.splitlines()[2] == (
        "| paper | 32 | 2 | 800 (40.00 [40.00-40.00]) | 1600 (20.00 [20.00-20.00]) | x2.00 |"
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")  # torch's
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_a_residual_network_exported_by_pytorch(dynamo, tmp_path):
    """torchvision's BasicBlock (out += identity; relu), with the identity and with a strided
    projection; exported in evaluation, so BatchNorm may come folded into the Conv. Skips
    without torch (or, for dynamo, without onnxscript)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)

    class Block(nn.Module):
        def __init__(self, C, F, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(C, F, 3, stride, 1, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(F), nn.ReLU()
            self.conv2, self.bn2 = nn.Conv2d(F, F, 3, 1, 1, bias=False), nn.BatchNorm2d(F)
            self.downsample = None
            if stride != 1 or C != F:
                self.downsample = nn.Sequential(nn.Conv2d(C, F, 1, stride, bias=False),
                                                nn.BatchNorm2d(F))  # fmt: skip

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            out += identity
            return self.relu(out)

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Block(8, 8, 1),
                        Block(8, 12, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(12, 5)).eval()  # fmt: skip
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.from_numpy(images(3, 16, n=4).astype(np.float32) / 255)
    path = tmp_path / "torch.onnx"
    if dynamo:
        pytest.importorskip("onnxscript")
        dims = ({0: torch.export.Dim("N")},)
        torch.onnx.export(net, (x,), str(path), dynamo=True, dynamic_shapes=dims, verbose=False)
    else:
        torch.onnx.export(net, (x,), str(path), opset_version=17, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "N"}})  # fmt: skip
    model = minicnn.onnx.load(path)
    blocks = [layer for layer in model.layers if isinstance(layer, minicnn.Residual)]
    assert [b.shortcut is None for b in blocks] == [True, False]
    assert all(b.activation == "relu" for b in blocks)
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(model.forward(x.numpy()), expected, rtol=1e-4, atol=1e-5)
