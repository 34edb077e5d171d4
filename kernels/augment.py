"""Data augmentation: one affine resampling and a colour jitter per image (minicnn.data.Augment).

The plain-NumPy twin is in tests/test_data_batches.py; Augment draws the per-image
parameters and calls this kernel.
"""

from .jit import jit


@jit
def affine_colour(x, out, flip, cos_t, sin_t, tx, ty, zoom, bright, contrast, geometric, color, hi):
    """out[n] = colour(affine(x[n])); x, out: float32 (N, C, H, W); per-image params (N,).

    The affine map: flip, then zoom by zoom[n] and rotate about the centre, then shift.
    """
    N, C, H, W = x.shape
    cy = (H - 1) / 2.0
    cx = (W - 1) / 2.0
    for n in range(N):
        if geometric:
            # inverse map, output pixel (i, j) -> source (sy, sx): undo the shift, then the
            # rotation and zoom, then the flip; affine in (i, j): sx = ax*j + bx*i + ex, sy
            # likewise. zoom 1 divides exactly, so it leaves the unzoomed map bit for bit
            ct, st = cos_t[n] / zoom[n], sin_t[n] / zoom[n]
            ox, oy = cx + tx[n], cy + ty[n]
            ax, bx, ex = ct, st, cx - ct * ox - st * oy
            ay, by, ey = -st, ct, cy + st * ox - ct * oy
            if flip[n]:
                ax, bx, ex = -ax, -bx, (W - 1) - ex
            for i in range(H):
                for j in range(W):
                    sx = ax * j + bx * i + ex
                    sy = ay * j + by * i + ey
                    sx = min(max(sx, 0.0), W - 1.0)  # edge fill
                    sy = min(max(sy, 0.0), H - 1.0)
                    x0 = int(sx)  # sx >= 0 here, so this is floor
                    y0 = int(sy)
                    x1 = min(x0 + 1, W - 1)
                    y1 = min(y0 + 1, H - 1)
                    wx = sx - x0
                    wy = sy - y0
                    for c in range(C):
                        top = x[n, c, y0, x0] * (1.0 - wx) + x[n, c, y0, x1] * wx
                        bottom = x[n, c, y1, x0] * (1.0 - wx) + x[n, c, y1, x1] * wx
                        out[n, c, i, j] = top * (1.0 - wy) + bottom * wy
        else:
            out[n] = x[n]
        if color:
            mean = 0.0
            for c in range(C):
                for i in range(H):
                    for j in range(W):
                        mean += out[n, c, i, j]
            mean = mean * bright[n] / (C * H * W)
            for c in range(C):
                for i in range(H):
                    for j in range(W):
                        v = (out[n, c, i, j] * bright[n] - mean) * contrast[n] + mean
                        out[n, c, i, j] = min(max(v, 0.0), hi)
