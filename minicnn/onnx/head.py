"""The head of an imported graph: which nodes at its end turn logits into probabilities.

A graph ending in Softmax (over axis 1) gives output "softmax", in Sigmoid (or minicnn's
two-class [1 - p, p], a Concat of Sub(1, p) and p = Sigmoid) "sigmoid"; a graph ending in
logits, as PyTorch classifiers do, is read as a softmax head. The model computes the
logits; Sequential's output applies the head.
"""

import numpy as np


def read_head(onnx, graph, const):
    """(the outputs of the head's nodes, the logits tensor, "softmax" or "sigmoid")."""
    producer = {out: n for n in graph.node for out in n.output}
    out = graph.output[0].name
    node = producer.get(out)
    if node is None:
        return set(), out, "softmax"
    if node.op_type == "Concat" and len(node.input) == 2:  # minicnn's [1 - p, p]
        sub, p = producer.get(node.input[0]), producer.get(node.input[1])
        if (sub is not None and p is not None and sub.op_type == "Sub"
                and p.op_type == "Sigmoid" and sub.input[1] == p.output[0]
                and np.array_equal(const.get(sub.input[0]), [[1.0]])):  # fmt: skip
            return {node.output[0], sub.output[0], p.output[0]}, p.input[0], "sigmoid"
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Softmax" and attrs.get("axis", -1) in (1, -1):
        return {node.output[0]}, node.input[0], "softmax"
    if node.op_type == "Sigmoid":
        return {node.output[0]}, node.input[0], "sigmoid"
    return set(), out, "softmax"
