"""Residual blocks in an imported graph: a fork, two paths, and the Add that joins them.

ResNet's basic block, as PyTorch and minicnn.onnx.export write it:

    x --> Conv -> BatchNormalization -> Relu -> Conv -> BatchNormalization --> Add -> Relu --> y
     \\---------------- Conv 1x1 -> BatchNormalization (or nothing) ---------/

A tensor that two nodes read (Shape, which reads only its size, does not count) opens a
block. The block closes at the first node after which every path that left the fork has
met again; that node must be an Add of two tensors. Each of the two paths is read like the
model's own layers (so a block inside a path nests); the longer one is the branch, the
other the shortcut (no node: the identity), and a Relu that alone reads the Add is the
block's activation: Residual(branch, shortcut, "relu"), or activation None without it.
"""

from ..layers import Residual, ShapeError


def readers(graph):
    """{tensor: number of places that read it}: node inputs (not Shape's) and graph outputs."""
    count = {}
    names = [n for node in graph.node if node.op_type != "Shape" for n in node.input]
    for name in names + [o.name for o in graph.output]:
        count[name] = count.get(name, 0) + 1
    return count


def _span(nodes, start, fork, count):
    """(indices of the nodes from the fork up to the join, index of the join) or None.

    Walks the nodes in graph order, keeping `pending`: the reads of tensors computed from
    the fork that no node has made yet. A node that reads such tensors makes those reads
    and adds the reads of its own output. The join is the first node that leaves no read
    pending but its output's own: every path from the fork runs through it.
    """
    derived, pending, members = {fork}, count[fork], []
    for j in range(start, len(nodes)):
        node = nodes[j]
        reads = sum(name in derived for name in node.input)
        if not reads:
            continue
        members.append(j)
        if node.op_type != "Shape":  # Shape's reads were not counted
            pending -= reads
        if pending == 0:
            return members, j
        derived.update(node.output)
        pending += sum(count.get(name, 0) for name in node.output)
    return None


def _ancestors(nodes, members, tensor, fork):
    """The indices (among members) of the nodes that tensor is computed from, since fork."""
    producer = {out: j for j in members for out in nodes[j].output}
    found, todo = set(), [tensor]
    while todo:
        name = todo.pop()
        j = producer.get(name)
        if name == fork or j is None or j in found:
            continue
        found.add(j)
        todo += list(nodes[j].input)
    return found


def read_block(imp, nodes, start):
    """Read the block that forks at imp.x, from nodes[start] on, into one Residual layer.

    Returns the indices of the nodes it read (the fork's paths, the Add, its Relu).
    """
    fork, node = imp.x, nodes[start]
    span = _span(nodes, start, fork, imp.readers)
    join = None if span is None else nodes[span[1]]
    inputs = [] if join is None else [n for n in join.input if n not in imp.const]
    if join is None or join.op_type != "Add" or len(inputs) != 2:
        where = "no node" if join is None else f"{join.op_type} node {join.name!r}"
        raise imp.fail(
            f"{fork!r} is read by two nodes whose paths meet at {where}; minicnn imports a "
            "fork only as a residual block, joined by an Add",
            node,
        )
    if imp.gap is not None or imp.hwc is not None:
        raise imp.fail("a residual block after GlobalAveragePool or in NHWC order", node)
    members, j = span
    paths = [_ancestors(nodes, members[:-1], name, fork) for name in inputs]
    if paths[0] & paths[1] or len(paths[0] | paths[1]) != len(members) - 1:
        raise imp.fail("joins two paths that share nodes; minicnn imports a residual block "
                       "as two separate paths from the fork", join)  # fmt: skip
    if not paths[0] and not paths[1]:
        raise imp.fail(f"adds {fork!r} to itself, which is no residual block", join)
    for k in range(start, j):  # constants the paths read (folded shapes, say): fold them now
        if k not in members and not [n for n in nodes[k].input if n and n not in imp.const]:
            imp._node(nodes[k])
            members.append(k)
    order = [0, 1] if len(paths[0]) >= len(paths[1]) else [1, 0]  # the branch: the longer
    shape, saved = imp.shape, (imp.layers, imp.x)
    lists = []
    imp.forks.add(fork)
    for k in order:
        imp.layers, imp.x, imp.shape = [], fork, shape
        imp.walk([nodes[i] for i in sorted(paths[k])])
        if imp.x != inputs[k] or imp.gap is not None:
            raise imp.fail(f"its input {inputs[k]!r} does not follow from {fork!r} by a chain "
                           "of layers", join)  # fmt: skip
        lists.append(imp.layers)
    imp.forks.discard(fork)
    imp.layers, imp.x, imp.shape = *saved, shape
    done, out = set(members), join.output[0]
    activation = None
    after = [k for k in range(j + 1, len(nodes)) if out in nodes[k].input]
    if imp.readers.get(out) == 1 and len(after) == 1 and nodes[after[0]].op_type == "Relu":
        activation, out = "relu", nodes[after[0]].output[0]
        done.add(after[0])
    try:
        block = Residual(lists[0], lists[1] or None, activation=activation)
        imp.add(block)
    except ShapeError as e:
        raise imp.fail(str(e), join) from None
    imp.x = out
    return done
