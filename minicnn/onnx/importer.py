"""Import an ONNX CNN as a Sequential that trains, fine-tunes, explains and saves like any other.

    model = minicnn.onnx.load("cnn.onnx")     # input (N, C, H, W) of fixed C, H, W

The graph must be a chain of layers and residual blocks: one input (N, C, H, W), one
output, each node taking the output of the node before it, except where a tensor forks into
two paths that an Add joins again (residual.py: a Residual block). Its nodes become layers:

    Conv                    Conv2D (square kernel, equal strides, group 1, dilations 1)
    BatchNormalization      BatchNorm2D, or BatchNorm1D on (N, F)
    Relu, Sigmoid, Softmax  ReLU, Sigmoid, Softmax (the last one, at the output: the head)
    MaxPool, AveragePool    MaxPool2D, AvgPool2D
    GlobalAveragePool, ReduceMean over H and W                        GlobalAvgPool2D
    Flatten, Reshape (N, -1), Squeeze after GlobalAveragePool        Flatten (or nothing)
    Gemm (transB 0 or 1, alpha, beta), MatMul [+ Add]                 Dense
    Add of a constant right after Conv, Gemm or MatMul                its bias
    a fork into two paths, Add [, Relu]         Residual(branch, shortcut [, "relu"])
    Identity, Dropout, Cast to float                                  nothing
    Cast, Div 255, Sub mean, Div std at the input (minicnn's export)  model.mean, model.std
    Transpose NHWC -> NCHW at the input, NCHW -> NHWC before the flatten (Keras through
    tf2onnx)            nothing: the model takes (N, C, H, W); the next Dense's rows reordered

Around these, what exporters compute from constants is folded (folding.py: PyTorch's flatten
as Shape -> Gather -> Unsqueeze -> Concat -> Reshape, say), and pads or auto_pad are read
where minicnn's padding gives the same windows (windows.py). Any other op is refused,
naming it and its node.

The head (head.py): a graph ending in Softmax gives output "softmax", in Sigmoid (or
minicnn's two-class [1 - p, p]) "sigmoid"; a graph ending in logits is read as a softmax head.
"""

import math
import os

import numpy as np

from ..layers import (
    AvgPool2D,
    BatchNorm1D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    ReLU,
    ShapeError,
    Sigmoid,
    Softmax,
)
from ..sequential import Sequential
from .common import OnnxError, require
from .folding import BATCH, FOLDS
from .head import read_head
from .metadata import read_metadata
from .residual import read_block, readers
from .windows import window

MIN_OPSET = 11  # Reshape, Pad and Clip as they are today; PyTorch and tf2onnx write newer


def load(path, input_shape=None):
    """Read the ONNX CNN at `path` as a Sequential (float32, evaluation-ready, trainable).

    input_shape (C, H, W): only for a graph whose input leaves them unnamed (a symbolic
    height, say). Raises OnnxError, naming the file and the node, for a file that is not
    ONNX, a graph with more than one input, an opset older than 11, an op or attribute
    minicnn's layers cannot represent, or an initializer whose shape contradicts its node.
    """
    onnx = require()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        proto = onnx.load(path)
        onnx.checker.check_model(proto)
    except Exception as e:  # protobuf's DecodeError, onnx's ValidationError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxError(f"{path} is not a readable ONNX model (truncated or another format): "
                        f"{first}") from None  # fmt: skip
    if not proto.graph.node:
        raise OnnxError(f"{path} is not an ONNX model with a graph (no nodes)")
    return _Importer(onnx, proto, path, input_shape).model()


class _Importer:
    def __init__(self, onnx, proto, path, input_shape):
        self.onnx, self.proto, self.path, self.graph = onnx, proto, path, proto.graph
        self.const = {i.name: onnx.numpy_helper.to_array(i) for i in self.graph.initializer}
        self.fold_limit = max(sum(a.size for a in self.const.values()), 1 << 16)
        self.layers, self.mean, self.std, self.scaled = [], None, None, False
        self.gap = None  # after GlobalAveragePool: the shape it pooled, until (N, C) is made
        self.hwc = None  # after a Transpose to NHWC: its (C, H, W), until the flatten
        self.order = None  # after a flatten of NHWC: the HWC index of each CHW feature
        self.used = {name for n in self.graph.node for name in n.input}
        self.used |= {o.name for o in self.graph.output}
        self.readers = readers(self.graph)  # a tensor read twice: a residual block's fork
        self.forks = set()  # the forks of the blocks being read: in a path, read once
        self._check_opset()
        self.x, self.shape = self._input(input_shape)
        self.graph_input, self.input_shape = self.x, self.shape

    def fail(self, message, node=None):
        where = "" if node is None else f"{node.op_type} node {node.name or '(unnamed)'!r}: "
        return OnnxError(f"{self.path}: {where}{message}")

    def _check_opset(self):
        versions = [o.version for o in self.proto.opset_import if o.domain in ("", "ai.onnx")]
        opset = max(versions, default=0)
        if opset < MIN_OPSET:
            raise self.fail(f"opset {opset} is older than minicnn reads ({MIN_OPSET} or newer); "
                            "export it again with a newer opset")  # fmt: skip

    def _input(self, input_shape):
        inputs = [i for i in self.graph.input if i.name not in self.const]
        if len(inputs) != 1:
            names = ", ".join(repr(i.name) for i in inputs)
            raise self.fail(f"the graph has {len(inputs)} inputs ({names}); minicnn imports "
                            "a graph with one, the batch of images")  # fmt: skip
        if len(self.graph.output) != 1:
            raise self.fail(f"the graph has {len(self.graph.output)} outputs; minicnn needs one")
        tensor = inputs[0].type.tensor_type
        T = self.onnx.TensorProto
        if tensor.elem_type not in (T.FLOAT, T.UINT8):
            kind = T.DataType.Name(tensor.elem_type)
            raise self.fail(f"input {inputs[0].name!r} is {kind}; minicnn reads float or uint8")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        if len(dims) != 4:
            raise self.fail(f"input {inputs[0].name!r} has {len(dims)} axes, not (N, C, H, W)")
        shape = tuple(input_shape) if input_shape is not None else tuple(dims[1:])
        if None in shape or len(shape) != 3:
            raise self.fail(f"input {inputs[0].name!r} has no fixed (C, H, W) {dims[1:]}: "
                            "pass input_shape=(C, H, W)")  # fmt: skip
        self.batch = dims[0]  # a batch size written into the graph (or None)
        return inputs[0].name, tuple(int(d) for d in shape)

    # ------------------------------------------------------------------ the walk

    def model(self):
        head, end, output = read_head(self.onnx, self.graph, self.const)
        self.walk([node for node in self.graph.node if node.output[0] not in head])
        if self.x != end:
            raise self.fail(f"the graph's output {end!r} does not follow from its input by a "
                            "chain of layers")  # fmt: skip
        try:
            model = Sequential(self.layers, input_shape=self.input_shape, output=output)
        except ShapeError as e:
            raise self.fail(f"its layers do not fit together: {e}") from None
        read_metadata(self.proto, model, self.mean, self.std, self.scaled)
        return model

    def walk(self, nodes):
        """Read nodes (in the graph's order) into self.layers, from the tensor self.x of
        per-sample shape self.shape: a block that holds layers reads its parts this way."""
        done = set()
        for i, node in enumerate(nodes):
            if i in done:
                continue
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(f"op of domain {node.domain!r} is not ONNX's own", node)
            fork = self.readers.get(self.x, 0) > 1 and self.x not in self.forks
            if fork and self.x in node.input:
                done |= read_block(self, nodes, i)
            else:
                self._node(node)

    def _attrs(self, node):
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def _node(self, node):
        inputs = [name for name in node.input if name]
        chain = [name for name in inputs if name not in self.const]
        if not chain or node.op_type == "Shape":
            return self._fold(node, inputs)
        if chain != [self.x]:
            if node.op_type == "Add" and len(chain) == 2:
                raise self.fail("adds two tensors that are not the two paths of a residual "
                                "block forking at the layer before", node)  # fmt: skip
            raise self.fail(f"takes {chain}, not only the output of the layer before it "
                            f"({self.x!r}): the graph is not a chain", node)  # fmt: skip
        op = LAYER_OPS.get(node.op_type)
        if op is None:
            known = ", ".join(sorted(LAYER_OPS))
            raise self.fail(f"op {node.op_type} is not one minicnn can import ({known})", node)
        if any(out in self.used for out in node.output[1:]):
            raise self.fail("a second output of this node is used; minicnn gives one", node)
        attrs = self._attrs(node)
        consts = [self.const.get(name) if name else None for name in node.input[1:]]
        if node.op_type not in ("Flatten", "Reshape", "Squeeze", "Identity", "Dropout", "Cast"):
            self._close_gap(node)
        if self.hwc is not None or self.order is not None:  # in NHWC order: flatten, Dense
            wanted = ("Flatten", "Reshape") if self.hwc is not None else ("Gemm", "MatMul")
            if node.op_type not in (*wanted, "Identity", "Dropout"):
                wanted = " or ".join(wanted)
                raise self.fail(f"follows a Transpose to NHWC; minicnn reads {wanted} there", node)
        try:
            op(self, node, attrs, consts)
        except OnnxError:
            raise
        except (ValueError, TypeError) as e:  # a layer's own check (a ShapeError, say)
            raise self.fail(str(e), node) from None
        self.x = node.output[0]

    def _fold(self, node, inputs):
        fold = FOLDS.get(node.op_type)
        if fold is None:
            raise self.fail(f"op {node.op_type} on constants cannot be folded", node)
        values = []
        for name in inputs:
            if name == self.x and node.op_type == "Shape":
                values.append(np.array([BATCH, *self.shape], dtype=object))
            elif name in self.const:
                values.append(self.const[name])
            else:
                raise self.fail(f"needs the shape of {name!r}, which is not known here", node)
        try:
            result = fold(self._attrs(node), *values)
        except (ValueError, TypeError, IndexError) as e:
            raise self.fail(f"cannot be computed from its constants: {e}", node) from None
        result = np.asarray(result)
        if result.size > self.fold_limit:  # folding must not grow past what the file holds
            raise self.fail(f"folds to {result.size:,} values, more than the file holds", node)
        self.const[node.output[0]] = result

    def _close_gap(self, node):
        """After GlobalAveragePool, a node other than a flatten: pool with one window."""
        if self.gap is None:
            return
        C, H, W = self.gap
        if H != W:
            raise self.fail(f"follows GlobalAveragePool of a {H}x{W} map, which minicnn "
                            "flattens to (N, C) (flatten it first)", node)  # fmt: skip
        self.layers[-1] = AvgPool2D(H)
        self.gap = None

    # ------------------------------------------------------------------ the layers

    def weight(self, node, consts, i, what):
        if i >= len(consts) or consts[i] is None:
            raise self.fail(f"its {what} is not a constant initializer", node)
        return np.array(consts[i], np.float32)  # a copy: onnx's arrays are read-only

    def contradicts(self, node, what, shape, wanted):
        if tuple(shape) != tuple(wanted):
            want = f"({', '.join(map(str, wanted))}{',' if len(wanted) == 1 else ''})"
            raise self.fail(f"{what} has shape {tuple(shape)}, but its input (N, "
                            f"{', '.join(map(str, self.shape))}) needs {want}", node)  # fmt: skip

    def need_rank(self, node, rank):
        if len(self.shape) + 1 != rank:
            raise self.fail(f"expects a {rank}-D input, gets (N, *{self.shape})", node)

    def conv(self, node, attrs, consts):
        self.need_rank(node, 4)
        group, dilations = attrs.get("group", 1), list(attrs.get("dilations", [1, 1]))
        if group != 1:
            raise self.fail(f"group {group}: grouped and depthwise convolutions are not "
                            "supported yet", node)  # fmt: skip
        if any(d != 1 for d in dilations):
            raise self.fail(f"dilations {dilations}: dilated convolutions are not supported "
                            "yet", node)  # fmt: skip
        W = self.weight(node, consts, 0, "weight")
        C, H, Wd = self.shape
        if W.ndim != 4 or W.shape[1] != C or W.shape[2] != W.shape[3]:
            self.contradicts(node, f"weight {node.input[1]!r}", W.shape, ("F", C, "k", "k"))
        F, k = W.shape[0], W.shape[2]
        if list(attrs.get("kernel_shape", [k, k])) != [k, k]:
            raise self.fail(f"kernel_shape {list(attrs['kernel_shape'])} contradicts its "
                            f"weight {W.shape}", node)  # fmt: skip
        p, s = window(attrs, k, H, Wd)
        b = self.weight(node, consts, 1, "bias") if len(node.input) > 2 and node.input[2] else None
        if b is not None:
            self.contradicts(node, f"bias {node.input[2]!r}", b.shape, (F,))
        conv = Conv2D(C, F, k, stride=s, padding=p, bias=b is not None)
        conv.W.data = np.ascontiguousarray(W)
        if b is not None:
            conv.b.data = np.ascontiguousarray(b)
        self.add(conv)

    def add(self, layer):
        self.layers.append(layer)
        self.shape = tuple(layer.output_shape(self.shape))

    def batchnorm(self, node, attrs, consts):
        if len(self.shape) not in (1, 3):
            raise self.fail(f"normalises an input (N, *{self.shape}); minicnn's BatchNorm "
                            "takes (N, C, H, W) or (N, F)", node)  # fmt: skip
        C = self.shape[0]
        names = ("scale", "B", "mean", "var")
        arrays = [self.weight(node, consts, i, names[i]) for i in range(4)]
        for name, a in zip(node.input[1:], arrays):
            self.contradicts(node, f"{name!r}", a.shape, (C,))
        momentum = 1.0 - float(attrs.get("momentum", 0.9))  # ONNX weighs the old statistics
        layer = (BatchNorm2D if len(self.shape) == 3 else BatchNorm1D)(
            C, momentum=momentum, eps=float(attrs.get("epsilon", 1e-5))
        )
        layer.gamma.data, layer.beta.data = arrays[0].copy(), arrays[1].copy()
        layer.running_mean, layer.running_var = arrays[2].copy(), arrays[3].copy()
        self.add(layer)

    def pool(self, node, attrs, consts):
        self.need_rank(node, 4)
        k = list(attrs.get("kernel_shape", []))
        if len(k) != 2 or k[0] != k[1]:
            raise self.fail(f"kernel_shape {k} is not square", node)
        _, H, W = self.shape
        p, s = window(attrs, k[0], H, W)
        if p:
            raise self.fail(f"pads {p} on every side: minicnn's pooling does not pad", node)
        self.add((MaxPool2D if node.op_type == "MaxPool" else AvgPool2D)(k[0], stride=s))

    def global_pool(self, node, attrs, consts):
        """GlobalAveragePool, or ReduceMean over axes 2, 3 (PyTorch's AdaptiveAvgPool2d(1))."""
        self.need_rank(node, 4)
        if node.op_type == "ReduceMean":
            axes = attrs.get("axes", consts[0] if consts else None)
            if axes is None or sorted(int(a) % 4 for a in np.reshape(axes, -1)) != [2, 3]:
                raise self.fail("only a mean over axes 2 and 3 (H, W) is a layer", node)
            if not attrs.get("keepdims", 1):  # (N, C) at once, as GlobalAvgPool2D gives
                return self.add(GlobalAvgPool2D())
        self.gap = self.shape
        self.add(GlobalAvgPool2D())
        self.shape = (self.shape[0], 1, 1)  # ONNX keeps the 1x1 map; minicnn gives (N, C)

    def flatten(self, node, attrs, consts):
        if self.hwc is not None:  # features in H, W, C order: the next Dense's rows are so
            C, H, W = self.hwc
            self.order = np.arange(C * H * W).reshape(H, W, C).transpose(2, 0, 1).reshape(-1)
            self.hwc, self.shape = None, (C, H, W)
        if self.gap is not None:  # GlobalAvgPool2D already gives (N, C)
            self.gap, self.shape = None, (self.shape[0],)
            return
        if node.op_type == "Flatten" and attrs.get("axis", 1) % (len(self.shape) + 1) != 1:
            raise self.fail(f"axis {attrs['axis']}: minicnn flattens from axis 1", node)
        if len(self.shape) > 1:
            self.add(Flatten())

    def reshape(self, node, attrs, consts):
        target = consts[0] if consts and consts[0] is not None else None
        if target is None:
            raise self.fail("its target shape is not a constant (nor folds to one)", node)
        t = list(np.asarray(target).reshape(-1))
        size = math.prod(self.shape)
        batch = t[0] is BATCH or t[0] == 0 or (t[0] == self.batch is not None)  # or exported N
        flat = len(t) == 2 and (batch or (t[0] == -1 and t[1] == size))
        if not (flat and (t[1] is not BATCH) and t[1] in (-1, size)):
            raise self.fail(f"reshapes (N, *{self.shape}) to {t}; minicnn imports a Reshape "
                            "to (N, -1) only, a flatten", node)  # fmt: skip
        self.flatten(node, attrs, consts)

    def squeeze(self, node, attrs, consts):
        axes = attrs.get("axes", None if not consts or consts[0] is None else consts[0])
        if self.gap is None or sorted(int(a) for a in np.asarray(axes).reshape(-1)) != [2, 3]:
            raise self.fail("only a Squeeze of axes 2, 3 after GlobalAveragePool is read", node)
        self.flatten(node, attrs, consts)

    def dense(self, node, attrs, consts):
        self.need_rank(node, 2)
        if node.input[0] != self.x:
            raise self.fail("multiplies a constant by the batch; minicnn's Dense is x @ W", node)
        if attrs.get("transA", 0):
            raise self.fail("transA 1: minicnn multiplies the batch (N, in) as it is", node)
        B = self.weight(node, consts, 0, "weight B")
        W = B.T if attrs.get("transB", 0) else B  # (in, out)
        if W.ndim != 2 or W.shape[0] != self.shape[0]:
            self.contradicts(node, f"B {node.input[1]!r}", W.shape, (self.shape[0], "out"))
        W = W * np.float32(attrs.get("alpha", 1.0))
        if self.order is not None:  # after a flatten of NHWC: row i is CHW feature order[i]
            W, self.order = W[self.order], None
        dense = Dense(W.shape[0], W.shape[1])
        dense.W.data = np.ascontiguousarray(W, np.float32)
        dense.b.data = np.zeros(W.shape[1], np.float32)
        self.add(dense)
        if node.op_type == "Gemm" and len(consts) > 1 and consts[1] is not None:
            self.bias(node, consts[1] * np.float32(attrs.get("beta", 1.0)))

    def transpose(self, node, attrs, consts):
        """Keras' layout through tf2onnx: an NHWC input made NCHW for the first Conv, and
        NCHW made NHWC again for the flatten before the first Dense."""
        perm = list(attrs.get("perm", []))
        if perm == [0, 3, 1, 2] and not self.layers and self.x == self.graph_input:
            H, W, C = self.shape
            self.shape = self.input_shape = (C, H, W)  # the model takes (N, C, H, W)
        elif perm == [0, 2, 3, 1] and len(self.shape) == 3:
            C, H, W = self.hwc = self.shape
            self.shape = (H, W, C)
        else:
            raise self.fail(f"perm {perm}: minicnn reads a Transpose of the NHWC input to NCHW, "
                            "and of NCHW to NHWC right before a flatten", node)  # fmt: skip

    def bias(self, node, c):
        """Add the constant c to the bias of the Conv2D or Dense just built: c of shape
        (1, F, 1, 1) or (F, 1, 1) after a Conv, (1, F) or (F,) after a Dense, or a scalar."""
        layer, F = self.layers[-1], self.shape[0]
        c = np.asarray(c, np.float32)
        rest = (1,) * (len(self.shape) - 1)
        if c.size != 1 and c.shape not in ((1, F, *rest), (F, *rest)):
            raise self.fail(f"adds a constant of shape {c.shape}, not a bias of {F}", node)
        if isinstance(layer, Conv2D) and layer.b is None:  # a Conv without B: now with one
            conv = Conv2D(layer.in_channels, F, layer.kernel_size, layer.stride, layer.pad)
            conv.W.data, conv.b.data = layer.W.data, np.zeros(F, np.float32)
            self.layers[-1] = layer = conv
        layer.b.data = (layer.b.data + np.broadcast_to(c.reshape(-1), (F,))).astype(np.float32)

    def arithmetic(self, node, attrs, consts):
        """Sub, Div, Add, Mul with a constant: the input normalisation, or a bias."""
        op, c = node.op_type, np.asarray(consts[0])
        if node.input[0] != self.x or c.dtype == object:
            raise self.fail(f"{op} with the constant first is not a layer minicnn has", node)
        C = self.shape[0]
        channel = c.size == C and c.reshape(-1).shape == (C,)
        if not self.layers and op == "Div" and c.size == 1 and float(c.reshape(-1)[0]) == 255:
            if self.scaled:
                raise self.fail("divides by 255 twice", node)
            self.scaled = True
            return
        if not self.layers and self.scaled and op == "Sub" and channel and self.mean is None:
            self.mean = c.reshape(-1)
            return
        if not self.layers and self.mean is not None and op == "Div" and channel:
            self.std = c.reshape(-1)
            return
        if op == "Add" and self.layers and isinstance(self.layers[-1], Conv2D | Dense):
            return self.bias(node, c)
        raise self.fail(f"{op} with a constant {c.shape} is no layer minicnn has (a bias after "
                        "Conv or Gemm, or the input's / 255, - mean, / std are)", node)  # fmt: skip

    def activation(self, node, attrs, consts):
        if node.op_type == "Softmax":
            if len(self.shape) != 1 or attrs.get("axis", -1) not in (1, -1):
                raise self.fail("minicnn's Softmax is over axis 1 of (N, K)", node)
            return self.add(Softmax())
        if node.op_type == "Cast" and attrs.get("to") != self.onnx.TensorProto.FLOAT:
            raise self.fail("casts to another type than float", node)
        layer = {"Relu": ReLU, "Sigmoid": Sigmoid}.get(node.op_type)
        if layer is not None:
            self.add(layer())


_I = _Importer
LAYER_OPS = {  # op type: the method that reads it
    "Conv": _I.conv,
    "BatchNormalization": _I.batchnorm,
    **dict.fromkeys(("Relu", "Sigmoid", "Softmax", "Identity", "Dropout", "Cast"), _I.activation),
    **dict.fromkeys(("MaxPool", "AveragePool"), _I.pool),
    **dict.fromkeys(("GlobalAveragePool", "ReduceMean"), _I.global_pool),
    "Flatten": _I.flatten,
    "Reshape": _I.reshape,
    "Squeeze": _I.squeeze,
    **dict.fromkeys(("Gemm", "MatMul"), _I.dense),
    **dict.fromkeys(("Add", "Sub", "Mul", "Div"), _I.arithmetic),
    "Transpose": _I.transpose,
}
