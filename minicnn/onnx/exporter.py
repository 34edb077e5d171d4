"""Export a minicnn model to ONNX: the input normalisation, one node per layer, the head.

    minicnn.onnx.export(model, "model.onnx")        # opset 17, dynamic batch axis "N"
    python -m minicnn export model.npz model.onnx

The graph computes what model.predict_proba computes (normalize="graph", the default):

    images  uint8 (N, C, H, W)
      -> Cast float -> Div 255 [-> Sub mean -> Div std]      model.preprocess
      -> one or two nodes per layer (the table below)         model.forward, evaluation
      -> Softmax, or Sigmoid (one unit: Concat [1 - p, p])    model.probabilities
    probabilities  float (N, K), K = len(class_names)

normalize="metadata": the input is `x` float (N, C, H, W), already (pixels / 255 - mean) / std
as model.forward takes it, and mean and std are only written into metadata_props.

    Conv2D          Conv (pads from padding, strides from stride; B only with a bias)
    BatchNorm2D/1D  BatchNormalization (evaluation: the running statistics, epsilon = eps)
    ReLU            Relu                     MaxPool2D, AvgPool2D   MaxPool, AveragePool
    Flatten         Flatten (axis 1)         GlobalAvgPool2D        GlobalAveragePool, Flatten
    Dense           Gemm (B = W, (in, out), transB 0: minicnn's y = x @ W + b as it stands)
    Dropout         nothing: it is the identity in evaluation
    Sigmoid/Softmax Sigmoid/Softmax (axis 1) where they are layers of the model
    Residual        its branch and its shortcut (none: the identity), Add, then Relu

BatchNorm stays a BatchNormalization node instead of being folded into the convolution
before it. The file then holds the model's own parameters: minicnn.onnx.load gives back the
same layers, which train and fine-tune as the original did. Inference loses nothing: ONNX
Runtime folds Conv + BatchNormalization into one Conv when it loads the graph (one of its
basic graph optimisations), as minicnn's fast engine does in evaluation.

metadata_props holds what `python -m minicnn predict` needs beside the graph: class names,
mean and std, and for two classes the positive class and the threshold (metadata.py).
"""

import numpy as np

from ..heads import single_unit
from ..io import atomic_write, model_record
from ..version import __version__
from .common import require
from .metadata import metadata

DEFAULT_OPSET = 17
MIN_OPSET = 17
NORMALIZE = ("graph", "metadata")


class Graph:
    """The nodes and initializers of a graph under construction, with unique names."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self.count = onnx, [], [], {}

    def name(self, stem):
        self.count[stem] = self.count.get(stem, -1) + 1
        return f"{stem}_{self.count[stem]}"

    def const(self, stem, array):
        """An initializer holding `array` as float32 (or as is for ints); returns its name."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self.name(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, stem=None, **attributes):
        """Add one node; returns the name of its (single) output."""
        stem = stem or op.lower()
        out = self.name(stem)
        node = self.onnx.helper.make_node(op, inputs, [out], name=f"{out}_node", **attributes)
        self.nodes.append(node)
        return out


# ------------------------------------------------------------------------- the layers
# Each emitter takes (graph, layer, x, shape): x the name of the layer's input tensor and
# shape its per-sample shape; it returns the name of the layer's output.


def _conv(g, conv, x, shape):
    k, p, s = conv.kernel_size, conv.pad, conv.stride
    inputs = [x, g.const("W", conv.W.data)]
    if conv.b is not None:
        inputs.append(g.const("b", conv.b.data))
    return g.node("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])


def _batchnorm(g, bn, x, shape):
    stats = [bn.gamma.data, bn.beta.data, bn.running_mean, bn.running_var]
    names = [g.const(n, a) for n, a in zip(("gamma", "beta", "mean", "var"), stats)]
    return g.node("BatchNormalization", [x, *names], stem="bn", epsilon=float(bn.eps))


def _pool(op):
    def emit(g, pool, x, shape):
        k, s = pool.pool_size, pool.stride
        return g.node(op, [x], kernel_shape=[k, k], strides=[s, s])

    return emit


def _global_avg_pool(g, layer, x, shape):
    return g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)


def _dense(g, dense, x, shape):
    return g.node("Gemm", [x, g.const("W", dense.W.data), g.const("b", dense.b.data)])


def _residual(g, block, x, shape):
    """Residual: Add of the branch's output and the shortcut's (x itself for the identity
    shortcut), then Relu unless the block's activation is None."""
    a, _ = emit_layers(g, block.branch, x, shape)
    b, _ = emit_layers(g, block.shortcut or [], x, shape)
    y = g.node("Add", [a, b])
    return g.node("Relu", [y]) if block.activation == "relu" else y


def _simple(op, **attributes):
    return lambda g, layer, x, shape: g.node(op, [x], **attributes)


EMITTERS = {
    "Conv2D": _conv,
    "BatchNorm2D": _batchnorm,
    "BatchNorm1D": _batchnorm,
    "ReLU": _simple("Relu"),
    "MaxPool2D": _pool("MaxPool"),
    "AvgPool2D": _pool("AveragePool"),
    "GlobalAvgPool2D": _global_avg_pool,
    "Flatten": _simple("Flatten", axis=1),
    "Dense": _dense,
    "Residual": _residual,
    "Dropout": lambda g, layer, x, shape: x,
    "Sigmoid": _simple("Sigmoid"),
    "Softmax": _simple("Softmax", axis=1),
}


def emit_layers(g, layers, x, shape):
    """Emit `layers` one after the other from tensor x of per-sample shape; returns
    (name of the last output, its per-sample shape). A layer that holds layers (its
    class lists their attributes in CHILDREN) has an emitter that calls this again."""
    for layer in layers:
        emitter = EMITTERS.get(type(layer).__name__)
        if emitter is None:
            raise TypeError(f"cannot export {layer!r}: no ONNX form for {type(layer).__name__}")
        x = emitter(g, layer, x, shape)
        shape = tuple(layer.output_shape(shape))
    return x, shape


def _head(g, model, logits, units):
    """Probabilities (N, K) from the logits, as model.probabilities computes them."""
    if model.output != "sigmoid":
        return g.node("Softmax", [logits], stem="probabilities", axis=1)
    p = g.node("Sigmoid", [logits], stem="probabilities")
    if not single_unit(units, model.output):
        return p
    one_minus_p = g.node("Sub", [g.const("one", np.ones((1, 1), np.float32)), p])
    return g.node("Concat", [one_minus_p, p], stem="probabilities", axis=1)  # [P(0), P(1)]


def _normalization(g, x, record):
    """uint8 images -> floats as model.preprocess makes them: pixels / 255, then the mean
    and std of the record if it has them (the same operations, in the same order)."""
    x = g.node("Cast", [x], stem="pixels", to=g.onnx.TensorProto.FLOAT)
    x = g.node("Div", [x, g.const("two_five_five", np.float32(255))], stem="scaled")
    if record["mean"] is not None:
        C = record["channels"]
        x = g.node("Sub", [x, g.const("mean", np.reshape(record["mean"], (1, C, 1, 1)))])
        x = g.node("Div", [x, g.const("std", np.reshape(record["std"], (1, C, 1, 1)))], stem="x")
    return x


def build(model, opset=None, normalize="graph"):
    """The onnx.ModelProto of a model (see the module's docstring), checked by onnx.checker."""
    onnx = require()
    opset = DEFAULT_OPSET if opset is None else int(opset)
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset must be {MIN_OPSET} to {latest} (this onnx), got {opset}")
    if normalize not in NORMALIZE:
        raise ValueError(f'normalize must be "graph" or "metadata", got {normalize!r}')
    if model.input_shape is None:
        raise ValueError(
            "cannot export a model whose input size is unknown: build it with "
            "input_shape=(C, H, W), as minicnn.models does, or set model.input_shape"
        )
    record = model_record(model)  # the model's description, as the model file holds it
    C, H, W = record["input_shape"]
    units = model.output_shape(model.input_shape)[-1]
    g = Graph(onnx)
    T = onnx.TensorProto
    if normalize == "graph":
        source = onnx.helper.make_tensor_value_info("images", T.UINT8, ["N", C, H, W])
        x = _normalization(g, "images", record)
    else:
        source = onnx.helper.make_tensor_value_info("x", T.FLOAT, ["N", C, H, W])
        x = "x"
    logits, _ = emit_layers(g, model.layers, x, (C, H, W))
    _head(g, model, logits, units)
    g.nodes[-1].output[0] = "probabilities"  # the graph's output under a plain name
    K = 2 if single_unit(units, model.output) else units
    result = onnx.helper.make_tensor_value_info("probabilities", T.FLOAT, ["N", K])
    graph = onnx.helper.make_graph(
        g.nodes, "minicnn", [source], [result], initializer=g.initializers
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(
        graph,
        opset_imports=opsets,
        producer_name="minicnn",
        producer_version=__version__,
        ir_version=onnx.helper.find_min_ir_version_for(opsets),
        doc_string=f"class probabilities (N, {K}) of {' -> '.join(map(repr, model.layers))}",
    )
    onnx.helper.set_model_props(proto, metadata(model, record, normalize))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, path, opset=None, normalize="graph"):
    """Write `model` to `path` as ONNX (opset 17 or newer, dynamic batch axis "N").

    normalize "graph": the input is uint8 images and the graph normalises them as
    model.predict_proba does; "metadata": the input is the normalised float batch and
    mean/std are in metadata_props. The output "probabilities" (N, K) equals
    model.predict_proba. The file is written through a temporary file (never half).
    Returns the checked onnx.ModelProto.
    """
    proto = build(model, opset, normalize)
    data = proto.SerializeToString()

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)
    return proto
