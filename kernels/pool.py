"""Max pooling: forward records the winner of each window, backward routes gradient to it.

x is (N, C, H, W); out and argmax are (N, C, H_out, W_out) with
H_out = (H - pool) // stride + 1 (windows that do not fit are dropped).
argmax holds the flat index h*W + w of the maximum inside x[n, c]; ties go to the first.
"""

from .jit import jit


@jit
def maxpool_forward(x, pool, stride, out, argmax):
    """out[n, c, oh, ow] = max of x[n, c] over the window at (oh*stride, ow*stride).

    x: (N, C, H, W); out, argmax: (N, C, H_out, W_out); argmax gets the flat h*W + w of
    each window's maximum (the first one on ties). Returns out.
    """
    N, C, H, W = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        for oh in range(out_h):
            for ow in range(out_w):
                h0 = oh * stride
                w0 = ow * stride
                best = x[n, c, h0, w0]
                best_i = h0 * W + w0
                for i in range(pool):
                    for j in range(pool):
                        v = x[n, c, h0 + i, w0 + j]
                        if v > best:
                            best = v
                            best_i = (h0 + i) * W + w0 + j
                out[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = best_i
    return out


@jit
def maxpool_backward(dout, argmax, dx):
    """dx (N, C, H, W) is zeroed, then each dout element is added at its window's argmax.

    Overlapping windows (stride < pool) add up inside one (n, c) plane; image n writes only
    dx[n], so slices of the batch can run on separate threads without a race.
    """
    N, C, H, W = dx.shape
    out_h, out_w = dout.shape[2], dout.shape[3]
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        for h in range(H):
            for w in range(W):
                dx[n, c, h, w] = 0
        for oh in range(out_h):
            for ow in range(out_w):
                k = argmax[n, c, oh, ow]
                dx[n, c, k // W, k % W] += dout[n, c, oh, ow]
    return dx
