"""How much the input pipeline costs: decode speed, cache-hit load, per-batch cost, synthetic set.

    python benchmarks/bench_data.py                       # generated JPEGs in a temporary zip
    python benchmarks/bench_data.py --source ../shared/data/tiny-imagenet-200.zip --workers 2

With --source, the first load decodes into a temporary cache folder (removed afterwards) and
the second load reads that cache. The per-batch rows compare batches() with a training step of
--step-ms milliseconds (the paper network at batch 32 is about 40 ms on 2 cores); the goal is
that the whole input pipeline stays under 10% of it. Nothing here asserts a time.
"""

import argparse
import io
import os
import shutil
import tempfile
import time
import zipfile

from PIL import Image

from minicnn import data


def timed(fn, repeat=1):
    """Best wall time of `repeat` calls, in seconds, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def make_jpeg_zip(path, n, size, classes=10):
    """A class-folder zip of n JPEGs (size x size) drawn from the synthetic set."""
    ds = data.synthetic(num_classes=classes, per_class=max(3, n // classes), image_size=size)
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, label) in enumerate(zip(ds.train.images[:n], ds.train.labels[:n])):
            buf = io.BytesIO()
            Image.fromarray(img.transpose(1, 2, 0)).save(buf, format="JPEG", quality=90)
            zf.writestr(f"set/class{label:02d}/{i:06d}.JPEG", buf.getvalue())


def per_batch_ms(split, batch_size, n_batches, **kw):
    """Milliseconds per batch drawn by batches(), over n_batches batches."""
    it = data.batches(split, batch_size, seed=0, **kw)
    next(it)  # first batch: permutation, JIT warm-up
    t0 = time.perf_counter()
    count = 0
    for _ in it:
        count += 1
        if count == n_batches:
            break
    return 1000 * (time.perf_counter() - t0) / max(count, 1)


if __name__ == "__main__":
    # settings
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a real data set to load (folder, .zip or .npz)")
    parser.add_argument("--images", type=int, default=4000, help="generated JPEGs to decode")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decode processes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=300, help="batches timed per row")
    parser.add_argument("--step-ms", type=float, default=40.0, help="training step to compare")
    args = parser.parse_args()
    S = args.image_size
    rows = []  # (what, value, unit, note)

    # decoding and cache
    tmp = tempfile.mkdtemp(prefix="minicnn-bench-")
    try:
        source = args.source
        if source is None:
            source = os.path.join(tmp, "set.zip")
            make_jpeg_zip(source, args.images, S)
        cache_dir = os.path.join(tmp, "cache")
        kw = dict(image_size=S, workers=args.workers, progress=False, cache_dir=cache_dir)
        if source.endswith(".npz"):
            t, ds = timed(lambda: data.load(source, **kw))
            rows.append(("load .npz", t, "s", f"{len(ds.train)} train images"))
        else:
            t1, ds = timed(
                lambda: data.load(
                    source,
                    cache=False,
                    workers=1,
                    **{k: v for k, v in kw.items() if k != "workers"},
                )
            )
            n = len(ds.train) + len(ds.val) + (len(ds.test) if ds.test is not None else 0)
            rows.append(("decode, 1 worker", n / t1, "img/s", f"{n} images in {t1:.1f} s"))
            t2, ds = timed(lambda: data.load(source, **kw))
            rows.append(("decode, all workers", n / t2, "img/s", f"first load {t2:.1f} s"))
            t3, ds = timed(lambda: data.load(source, **kw))
            rows.append(("cache-hit load", t3, "s", "second load, same settings"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # per batch: gather uint8 rows, convert, augment, normalise
    train = ds.train
    mean, std = data.channel_stats(train)
    B = args.batch_size
    aug = data.Augment(flip=0.5, rotate=10, shift=0.1, brightness=0.2, contrast=0.2)
    for what, extra in (
        ("batches() x/255", {}),
        ("batches() normalised", {"normalize": (mean, std)}),
        ("batches() normalised + augment", {"normalize": (mean, std), "augment": aug}),
    ):
        ms = per_batch_ms(train, B, args.batches, **extra)
        rows.append(
            (what, ms, "ms/batch", f"{100 * ms / args.step_ms:.1f}% of a {args.step_ms:g} ms step")
        )
    t, _ = timed(lambda: data.channel_stats(train))
    rows.append(("channel_stats(train)", t, "s", f"{len(train)} images"))

    # synthetic set
    for K, per_class in ((20, 300), (200, 100)):
        t, _ = timed(
            lambda K=K, n=per_class: data.synthetic(num_classes=K, per_class=n, image_size=S)
        )
        rows.append((f"synthetic({K}, {per_class})", t, "s", f"{K * per_class} images"))

    # results
    print(f"\nimage size {S}, batch {B}, source {args.source or 'generated JPEG zip'}")
    print(f"{'what':34s} {'value':>10s}  {'unit':9s} note")
    for what, value, unit, note in rows:
        print(f"{what:34s} {value:10.2f}  {unit:9s} {note}")
