"""Does BatchNorm cost anything at inference? paper_bn against the same network without it.

    python benchmarks/bench_bn_inference.py            # 1 and 2 threads, batch 256
    python benchmarks/bench_bn_inference.py --threads 1 --rounds 21

In evaluation the fast engine folds each BatchNorm2D into the convolution before it, so
paper_bn should infer as fast as its twin whose convolutions have a bias and no BatchNorm.
Both are timed in one worker process per thread count, interleaved call by call; medians.
"""

import argparse
import os
import subprocess
import sys
import time


def twin_without_batchnorm(model):
    """The same layers, each Conv2D(bias=False) -> BatchNorm2D turned into Conv2D(bias=True)."""
    import minicnn

    layers = []
    for layer in model.layers:
        if isinstance(layer, minicnn.BatchNorm2D):
            continue
        if isinstance(layer, minicnn.Conv2D) and layer.b is None:
            conv = minicnn.Conv2D(layer.in_channels, layer.out_channels, layer.kernel_size,
                                  stride=layer.stride, padding=layer.padding)  # fmt: skip
            conv.W.data[...] = layer.W.data
            layer = conv
        layers.append(layer)
    return minicnn.Sequential(layers, input_shape=model.input_shape)


def worker(rounds, batch):
    import numpy as np

    import minicnn

    with_bn = minicnn.models.paper_bn(num_classes=200, seed=0)
    models = {"paper_bn": with_bn, "without BatchNorm": twin_without_batchnorm(with_bn)}
    x = np.random.default_rng(0).standard_normal((batch, 3, 64, 64)).astype(np.float32)
    times = {name: [] for name in models}
    for m in models.values():
        m.forward(x)
    for _ in range(rounds):
        for name, m in models.items():
            t = time.perf_counter()
            m.forward(x)
            times[name].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    line = "  ".join(f"{k} {batch / v:.0f} img/s ({v * 1e3:.1f} ms)" for k, v in med.items())
    ratio = med["paper_bn"] / med["without BatchNorm"]
    print(f"{minicnn.threads.get_num_threads()} thread(s), batch {batch}: {line}; "
          f"paper_bn / without: x{ratio:.3f} time")  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.rounds, args.batch)
    for t in args.threads.split(","):
        env = dict(os.environ, NUMBA_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, OMP_NUM_THREADS=t)
        cmd = [sys.executable, __file__, "--worker", "--rounds", str(args.rounds)]
        subprocess.run(cmd + ["--batch", str(args.batch)], env=env, check=True)


if __name__ == "__main__":
    main()
