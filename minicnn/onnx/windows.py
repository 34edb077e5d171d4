"""ONNX's window attributes (kernel, strides, pads, auto_pad, ceil_mode) as minicnn's padding.

minicnn's Conv2D pads every side alike by p and its pools do not pad; ONNX pads each side on
its own: pads = [top, left, bottom, right], or auto_pad SAME_UPPER / SAME_LOWER (the total
needed for H_out = ceil(H / s), its odd one after or before) or VALID (none). The windows of
both start at -top, -top + s, ..., so they are the same windows when p = top = left and the
output has the same size: the extra bottom or right padding, if any, then reaches no window.
"""

import math


def window(attrs, k, H, W):
    """(p, s): the padding on every side and the stride of a k x k window with these
    attributes over an H x W input, or a ValueError saying why minicnn cannot take them."""
    strides = list(attrs.get("strides", [1, 1]))
    if strides[0] != strides[1]:
        raise ValueError(f"strides {strides} differ; minicnn's layers stride alike")
    s = int(strides[0])
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise ValueError(f"dilations {list(attrs['dilations'])} are not supported")
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    sizes = (H, W)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((math.ceil(n / s) - 1) * s + k - n, 0) for n in sizes]
        before = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        pads = before + [t - a for t, a in zip(total, before)]
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    else:
        pads = [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    rounding = math.ceil if attrs.get("ceil_mode", 0) else math.floor
    want = [rounding((n + pads[a] + pads[a + 2] - k) / s) + 1 for a, n in enumerate(sizes)]
    p = pads[0]
    got = [(n + 2 * p - k) // s + 1 for n in sizes]
    if pads[1] != p or got != want:
        raise ValueError(
            f"pads {pads} (top, left, bottom, right) on a {H}x{W} input give "
            f"{want[0]}x{want[1]}; minicnn pads every side alike and gets {got[0]}x{got[1]}"
        )
    return p, s
