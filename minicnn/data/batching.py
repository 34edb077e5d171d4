"""From uint8 splits to float32 mini-batches: shuffle, scale to [0, 1], augment, normalise.

With `balance=True` an epoch is drawn instead of shuffled (`balanced_order`): N images with
replacement, each class equally likely, so that a rare class is seen as often as a common
one and the loss needs no class weights.

The whole split stays uint8; only the B images of a batch are converted, so Tiny ImageNet's
110,000 images cost 1.4 GB, not 5.4 GB. Normalisation statistics are in the 0..1 scale:
`x = (pixels / 255 - mean) / std`, per channel, with mean and std from `channel_stats(train)`.
"""

import numpy as np

STATS_CHUNK = 2048  # images per chunk when computing channel statistics


def channel_stats(split):
    """Per-channel mean and standard deviation of a split, in the 0..1 pixel scale.

    Inputs:
    - split: Split (or uint8 array) with images (N, C, H, W)

    Returns:
    - mean, std: float32 (C,); std is at least 1/255 so a constant channel cannot divide by 0
    """
    images = split.images if hasattr(split, "images") else np.asarray(split)
    N, C = images.shape[:2]
    if N == 0:
        raise ValueError("channel_stats needs at least one image")
    total = np.zeros(C, dtype=np.float64)
    total_sq = np.zeros(C, dtype=np.float64)
    for start in range(0, N, STATS_CHUNK):
        chunk = images[start : start + STATS_CHUNK].astype(np.float32)  # (n, C, H, W)
        total += chunk.sum(axis=(0, 2, 3), dtype=np.float64)
        total_sq += np.einsum("nchw,nchw->c", chunk, chunk, dtype=np.float64)
    count = N * images.shape[2] * images.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - mean**2, 0.0)
    std = np.maximum(np.sqrt(var), 1.0)
    return (mean / 255.0).astype(np.float32), (std / 255.0).astype(np.float32)


def to_float(images, normalize=None, out=None):
    """uint8 (B, C, H, W) -> float32 (B, C, H, W): x/255, or (x/255 - mean)/std.

    One multiply-add per pixel: x * (1 / (255 std)) + (-mean / std).
    """
    B, C = images.shape[:2]
    if out is None:
        out = np.empty(images.shape, dtype=np.float32)
    if normalize is None:
        np.multiply(images, np.float32(1.0 / 255.0), out=out, dtype=np.float32)
        return out
    mean, std = (np.asarray(v, dtype=np.float32).reshape(-1) for v in normalize)
    if mean.shape != (C,) or std.shape != (C,):
        raise ValueError(f"normalize needs mean and std of shape ({C},), got {mean.shape}")
    scale = (1.0 / (255.0 * std)).reshape(1, C, 1, 1)
    shift = (-mean / std).reshape(1, C, 1, 1)
    np.multiply(images, scale, out=out, dtype=np.float32)
    out += shift
    return out


def normalize_float(x, normalize):
    """Float batch in the 0..1 scale -> (x - mean) / std in place (used after augmentation)."""
    if normalize is None:
        return x
    C = x.shape[1]
    mean, std = (np.asarray(v, dtype=np.float32).reshape(1, C, 1, 1) for v in normalize)
    x -= mean
    x *= 1.0 / std
    return x


def balanced_order(labels, rng):
    """An epoch of class-balanced draws: N indices with replacement, each class equally likely.

    Inputs:
    - labels: int (N,); rng: numpy Generator (the epoch's seeded one)

    Returns:
    - int64 (N,): image i is drawn with probability 1 / (K * n_k), K the classes present and
      n_k the images of i's class, so each class makes 1/K of the draws in expectation. The
      draws depend on (labels, rng) only: every MPI rank draws the same epoch.
    """
    labels = np.asarray(labels)
    N = len(labels)
    if N == 0:
        return np.zeros(0, dtype=np.int64)
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    p = 1.0 / (len(classes) * counts[index])  # (N,), sums to 1
    return rng.choice(N, size=N, replace=True, p=p / p.sum()).astype(np.int64)


def batches(
    split,
    batch_size,
    shuffle=True,
    seed=0,
    augment=None,
    normalize=None,
    drop_last=False,
    part=None,
    balance=False,
):
    """Yield float32 mini-batches of a split.

    Inputs:
    - split: Split with uint8 images (N, C, H, W) and int64 labels (N,)
    - batch_size: B
    - shuffle: visit the images in a seeded random order (same seed -> same order; pass a
      different seed each epoch, e.g. seed + epoch)
    - augment: None or a callable `augment(x, rng)` on float32 (B, C, H, W) in [0, 1], such as
      `Augment`; it draws from the same seeded Generator as the shuffle
    - normalize: None (x / 255) or (mean, std) of shape (C,) from `channel_stats`
    - drop_last: skip the last batch when it is smaller than B
    - part: None, or (r, P) for data-parallel training (minicnn.distributed): every rank
      shuffles alike and yields only part r of each batch, B // P images, the first B % P
      parts one more; augmentation then draws from a stream of (seed, r). A last batch of
      fewer than P images is skipped, so that no part is empty.
    - balance: draw the epoch's N images with replacement so that each class is equally
      likely (balanced_order) instead of shuffling; seeded like the shuffle, so a resumed or
      sharded epoch draws the same images. Needs shuffle.

    Yields:
    - x: float32 (B, C, H, W), C-contiguous; y: int64 (B,)
    """
    N = len(split)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if balance and not shuffle:
        raise ValueError("balance draws a random epoch: it needs shuffle=True")
    rng = np.random.default_rng(seed)
    if balance:
        order = balanced_order(split.labels, rng)
    else:
        order = rng.permutation(N) if shuffle else None
    stop = N - N % batch_size if drop_last else N
    if part is not None:
        r, P = part
        if N % batch_size < P:  # a last batch of fewer than P images: skipped
            stop = N - N % batch_size
        rng_augment = np.random.default_rng([seed, r])
    for start in range(0, stop, batch_size):
        lo, hi = start, min(start + batch_size, N)
        if part is not None:  # this rank's images of the global batch [lo, hi)
            n = hi - lo
            lo += r * (n // P) + min(r, n % P)
            hi = lo + n // P + (r < n % P)
        if order is None:
            xb = split.images[lo:hi]
            y = split.labels[lo:hi].copy()
        else:
            idx = order[lo:hi]
            xb = split.images[idx]  # (B, C, H, W) uint8 gather
            y = split.labels[idx]
        if augment is None:
            x = to_float(xb, normalize)
        else:
            x = augment(to_float(xb), rng if part is None else rng_augment)
            x = normalize_float(np.ascontiguousarray(x, dtype=np.float32), normalize)
        yield x, y
