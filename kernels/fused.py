"""Scale and shift, ReLU (+ max pool) straight out of the convolution's matrix multiply.

The convolution's product Y is (F, N, H, Wr): channel-major, as the matrix multiply gives it,
with rows Wr >= W wide, of which only the first W columns are the output (a stride-1
convolution computes its rows at the padded width; see kernels/im2col.py: im2col_s1). Y is
passed whole and contiguous, with W, rather than as the strided view Y[..., :W]: then
LLVM knows each row is contiguous and vectorises the loops (measured up to 3x faster).
For the same reason a slice of the batch is given as an offset, not a view: images
n0 .. n0+n-1 of Y (or dY) go with the n images of out, dout and argmax.

These kernels compute z = Y * scale[f] + shift[f] per channel, apply ReLU, pool, and write
the result in NCHW, in one pass, instead of three passes and a transpose. For a convolution
with a bias, scale is 1 and shift the bias (Y * 1 is Y exactly: the same z as Conv2D's);
after a convolution in training, BatchNorm's scale gamma / std and shift beta - mean *
scale (minicnn/fast/batchnorm.py). They compute what Conv2D (+ BatchNorm), ReLU and
MaxPool2D compute one after the other; tests/test_fused.py checks that. The backward
kernels write all of dY (F, N, H, Wr), the gradient with respect to z, zeros in the unused
columns. bias_forward and bias_backward are the same without ReLU: a convolution followed by
BatchNorm alone (the last one in a residual branch, a projection shortcut).

add_relu_forward and add_relu_backward are a residual block's own epilogue (minicnn/fast/
residual.py): out = relu(z + skip) in one pass, and dz = dout * (out > 0) in one pass, where
NumPy takes a pass and an array for the sum, the mask and the maximum each.
"""

from .jit import jit


@jit
def bias_relu_pool_forward(Y, n0, W, scale, shift, pool, stride, out, argmax):
    """out[n, f] = maxpool(relu(Y[f, n0 + n, :, :W] * scale[f] + shift[f])), argmax of each.

    Y: (F, N, H, Wr); scale, shift: (F,); out, argmax: (N, F, H_out, W_out); argmax is the
    flat h*W + w of the maximum, ties going to the first. z is computed before comparing,
    so the values compared are the ones MaxPool2D sees (rounding and all), and
    relu(max(v)) = max(relu(v)) lets ReLU come once, after the max.
    """
    F, N = Y.shape[0], out.shape[0]
    out_h, out_w = out.shape[2], out.shape[3]
    zero = out.dtype.type(0)  # a bare 0 would make the select float64
    for nf in range(N * F):
        n = nf // F
        f = nf % F
        sf, bf = scale[f], shift[f]
        for oh in range(out_h):
            for ow in range(out_w):
                h0 = oh * stride
                w0 = ow * stride
                best = Y[f, n0 + n, h0, w0] * sf + bf
                best_i = h0 * W + w0
                for i in range(pool):
                    for j in range(pool):
                        v = Y[f, n0 + n, h0 + i, w0 + j] * sf + bf
                        if v > best:
                            best = v
                            best_i = (h0 + i) * W + w0 + j
                out[n, f, oh, ow] = best if best > 0 else zero
                argmax[n, f, oh, ow] = best_i
    return out


@jit
def bias_relu_pool2_forward(Y, n0, W, scale, shift, out, argmax):
    """bias_relu_pool_forward for the common 2x2 window with stride 2, unrolled.

    Same result, ties included (the first maximum in reading order wins); the four values
    of a window are compared without a loop, which LLVM turns into selects: measured 2-3x
    faster than the general kernel.
    """
    F, N = Y.shape[0], out.shape[0]
    out_h, out_w = out.shape[2], out.shape[3]
    zero = out.dtype.type(0)  # a bare 0 would make the select float64
    for n in range(N):
        for f in range(F):
            sf, bf = scale[f], shift[f]
            for oh in range(out_h):
                h0 = 2 * oh
                top, bottom = Y[f, n0 + n, h0], Y[f, n0 + n, h0 + 1]
                o, am = out[n, f, oh], argmax[n, f, oh]
                for ow in range(out_w):
                    w0 = 2 * ow
                    a, c = top[w0] * sf + bf, top[w0 + 1] * sf + bf
                    d, e = bottom[w0] * sf + bf, bottom[w0 + 1] * sf + bf
                    top_max, top_w = (a, w0) if a >= c else (c, w0 + 1)
                    bottom_max, bottom_w = (d, w0) if d >= e else (e, w0 + 1)
                    if top_max >= bottom_max:
                        best, k = top_max, h0 * W + top_w
                    else:
                        best, k = bottom_max, (h0 + 1) * W + bottom_w
                    o[ow] = best if best > 0 else zero
                    am[ow] = k
    return out


@jit
def bias_relu_pool_backward(dout, out, argmax, W, dY, n0, db_partial):
    """dY (F, N, H, Wr) = gradient through pool and ReLU; db_partial (N, F) per-image sums.

    dout, out, argmax: (N, F, H_out, W_out). Each (n, f) plane of dY is zeroed, then every
    dout whose pooled output was positive is added at its window's argmax (overlapping
    windows add up). Image n writes only dY[:, n]: slices of the batch can run on separate
    threads without a race.
    """
    F, H, Wr, N = dY.shape[0], dY.shape[2], dY.shape[3], dout.shape[0]
    out_h, out_w = dout.shape[2], dout.shape[3]
    zero = dY.dtype.type(0)
    for nf in range(N * F):
        n = nf // F
        f = nf % F
        for h in range(H):
            for w in range(Wr):
                dY[f, n0 + n, h, w] = 0
        acc = zero
        for oh in range(out_h):
            for ow in range(out_w):
                if out[n, f, oh, ow] > 0:
                    k = argmax[n, f, oh, ow]
                    g = dout[n, f, oh, ow]
                    dY[f, n0 + n, k // W, k % W] += g
                    acc += g
        db_partial[n, f] = acc
    return dY


@jit
def bias_relu_pool2_backward(dout, out, argmax, W, dY, n0, db_partial):
    """bias_relu_pool_backward for 2x2 windows with stride 2, which do not overlap.

    Every element of dY lies in at most one window, so each window's four values are
    written directly (the gradient at its argmax, 0 elsewhere) with no zeroing pass; the
    rows and columns that the floor rule dropped (and columns >= W) get 0.
    """
    F, H, Wr, N = dY.shape[0], dY.shape[2], dY.shape[3], dout.shape[0]
    out_h, out_w = dout.shape[2], dout.shape[3]
    zero = dY.dtype.type(0)
    for n in range(N):
        for f in range(F):
            acc = zero
            for oh in range(out_h):
                h0 = 2 * oh
                top, bottom = dY[f, n0 + n, h0], dY[f, n0 + n, h0 + 1]
                g_row, o_row, a_row = dout[n, f, oh], out[n, f, oh], argmax[n, f, oh]
                base = h0 * W
                for ow in range(out_w):
                    w0 = 2 * ow
                    g = g_row[ow] if o_row[ow] > 0 else zero
                    k = a_row[ow] - base - w0  # 0, 1, W or W + 1
                    top[w0] = g if k == 0 else zero
                    top[w0 + 1] = g if k == 1 else zero
                    bottom[w0] = g if k == W else zero
                    bottom[w0 + 1] = g if k == W + 1 else zero
                    acc += g
                for w in range(2 * out_w, Wr):
                    top[w] = 0
                    bottom[w] = 0
            for h in range(2 * out_h, H):
                for w in range(Wr):
                    dY[f, n0 + n, h, w] = 0
            db_partial[n, f] = acc
    return dY


@jit
def bias_relu_forward(Y, n0, W, scale, shift, out):
    """out[n, f] = relu(Y[f, n0 + n, :, :W] * scale[f] + shift[f]).

    Y: (F, N, H, Wr); scale, shift: (F,); out: (N, F, H, W).
    """
    F, N, H = Y.shape[0], out.shape[0], Y.shape[2]
    zero = out.dtype.type(0)
    for n in range(N):
        for f in range(F):
            sf, bf = scale[f], shift[f]
            for h in range(H):
                y, o = Y[f, n0 + n, h], out[n, f, h]
                for w in range(W):
                    v = y[w] * sf + bf
                    o[w] = v if v > 0 else zero
    return out


@jit
def bias_relu_backward(dout, out, W, dY, n0, db_partial):
    """dY[f, n0 + n, :, :W] = dout[n, f] where out > 0, else 0 (and 0 in columns >= W).

    db_partial (N, F): per-image sums of the gradient, the shift's (bias's) gradient pieces.
    """
    F, H, Wr, N = dY.shape[0], dY.shape[2], dY.shape[3], dout.shape[0]
    zero = dY.dtype.type(0)
    for n in range(N):
        for f in range(F):
            acc = zero
            for h in range(H):
                g_row, o_row, d = dout[n, f, h], out[n, f, h], dY[f, n0 + n, h]
                for w in range(W):
                    g = g_row[w] if o_row[w] > 0 else zero
                    d[w] = g
                    acc += g
                for w in range(W, Wr):
                    d[w] = 0
            db_partial[n, f] = acc
    return dY


@jit
def bias_forward(Y, n0, W, scale, shift, out):
    """out[n, f] = Y[f, n0 + n, :, :W] * scale[f] + shift[f]: bias_relu_forward without ReLU.

    Y: (F, N, H, Wr); scale, shift: (F,); out: (N, F, H, W).
    """
    F, N, H = Y.shape[0], out.shape[0], Y.shape[2]
    for n in range(N):
        for f in range(F):
            sf, bf = scale[f], shift[f]
            for h in range(H):
                y, o = Y[f, n0 + n, h], out[n, f, h]
                for w in range(W):
                    o[w] = y[w] * sf + bf
    return out


@jit
def bias_backward(dout, W, dY, n0, db_partial):
    """dY[f, n0 + n, :, :W] = dout[n, f] (0 in columns >= W): bias_relu_backward without ReLU.

    dout: (N, F, H, W); dY: (F, N', H, Wr); db_partial (N, F): per-image sums of dout.
    """
    F, H, Wr, N = dY.shape[0], dY.shape[2], dY.shape[3], dout.shape[0]
    zero = dY.dtype.type(0)
    for n in range(N):
        for f in range(F):
            acc = zero
            for h in range(H):
                g_row, d = dout[n, f, h], dY[f, n0 + n, h]
                for w in range(W):
                    g = g_row[w]
                    d[w] = g
                    acc += g
                for w in range(W, Wr):
                    d[w] = 0
            db_partial[n, f] = acc
    return dY


@jit
def add_relu_forward(z, skip, out):
    """out = max(z + skip, 0), elementwise over flat arrays of one length; out may be z.

    As np.maximum: NaN stays NaN (so a non-finite check downstream still sees it).
    """
    zero = out.dtype.type(0)
    for i in range(out.shape[0]):
        v = z[i] + skip[i]
        out[i] = zero if v < 0 else v
    return out


@jit
def add_relu_backward(dout, out, dz):
    """dz = dout where out > 0, else 0 (ReLU's backward, the mask read from its output).

    dout, out, dz: flat arrays of one length.
    """
    zero = dz.dtype.type(0)
    for i in range(dz.shape[0]):
        dz[i] = dout[i] if out[i] > 0 else zero
    return dz
