"""im2col or Winograd? Every 3x3 stride-1 convolution shape of the presets, timed both ways.

    python benchmarks/bench_conv.py                 # batch 32, 1 and 2 threads
    python benchmarks/bench_conv.py --batch 128 --rounds 21 --threads 1
    python benchmarks/bench_conv.py --parts        # each piece of a Winograd layer, 1 thread

For each distinct Conv2D shape of paper, paper13 and paper_bn (64x64 images), one training
step of a Conv2D -> ReLU block (forward, then backward with the input gradient) runs on the
fast engine's im2col path (ChunkedConv) and on its Winograd path (WinogradConv), interleaved
call by call in one process per thread count; medians. minicnn.fast.winograd.conv_matmul
uses Winograd from WINOGRAD_MIN_CHANNELS input channels and WINOGRAD_MIN_SIZE output pixels
on: this table is what that rule rests on. --parts times each piece of a Winograd layer's
step on one thread (the transforms and the 16 matrix products, forward and backward), per
batch, chunk by chunk as the fast engine runs them. Run it on a quiet machine.
"""

import argparse
import os
import subprocess
import sys
import time


def shapes():
    """(C, F, H) of every distinct 3x3 stride-1 convolution of the presets, 64x64 input."""
    import minicnn
    from minicnn.layers.base import output_shapes

    found = []
    for preset in (minicnn.models.paper, minicnn.models.paper13, minicnn.models.paper_bn):
        model = preset(num_classes=200)
        inputs = [model.input_shape] + output_shapes(model.layers, model.input_shape)[:-1]
        for layer, shape in zip(model.layers, inputs):
            if isinstance(layer, minicnn.Conv2D) and layer.kernel_size == 3 and layer.stride == 1:
                key = (layer.in_channels, layer.out_channels, shape[1])
                if key not in found:
                    found.append(key)
    return found


def step(model, x, dout):
    model.forward(x, training=True)
    model.backward(dout, input_grad=True)


def worker(rounds, batch):
    import numpy as np

    import minicnn
    from minicnn.fast import winograd

    rng = np.random.default_rng(0)
    winograd.WINOGRAD_MIN_CHANNELS = winograd.WINOGRAD_MIN_SIZE = 1  # Winograd wherever it can
    print(f"{minicnn.threads.get_num_threads()} thread(s), batch {batch}:")
    print("| Conv2D | at | im2col ms | Winograd ms | im2col / Winograd |")
    print("| --- | --- | --- | --- | --- |")
    for C, F, H in shapes():
        model = minicnn.Sequential([minicnn.Conv2D(C, F, 3, padding="same"), minicnn.ReLU()])
        x = rng.standard_normal((batch, C, H, H)).astype(np.float32)
        dout = rng.standard_normal((batch, F, H, H)).astype(np.float32)
        times = {False: [], True: []}
        for _ in range(rounds):
            for use in (False, True):
                winograd.WINOGRAD = use
                step(model, x, dout)  # untimed: the other path's buffers out, this one's in
                t = time.perf_counter()
                step(model, x, dout)
                times[use].append(time.perf_counter() - t)
        a, b = (float(np.median(times[k])) * 1e3 for k in (False, True))
        print(f"| {C}->{F} | {H}x{H} | {a:.2f} | {b:.2f} | x{a / b:.2f} |", flush=True)


def parts(rounds, batch):
    """Milliseconds per batch of each piece of WinogradConv's forward and backward."""
    import numpy as np

    import minicnn  # noqa: F401  (importing it sets OpenBLAS to one thread)
    from minicnn import kernels
    from minicnn.fast.winograd import TILE_FLOATS, stack, transform_weights

    K = kernels.winograd
    rng = np.random.default_rng(0)
    print(f"one thread, batch {batch}, ms per batch:")
    print("| Conv2D | at | input | 16 products | output | output adjoint | 16 products dx "
          "| 16 products dW | input adjoint |")  # fmt: skip
    print("| --- " * 9 + "|")
    for C, F, H in ((32, 32, 32), (64, 64, 16), (128, 128, 8)):
        th = tw = H // 2
        n = max(1, TILE_FLOATS // (16 * C * th * tw))  # images per chunk, as WinogradConv
        T = n * th * tw
        x = rng.standard_normal((n, C, H, H)).astype(np.float32)
        U = transform_weights(rng.standard_normal((F, C * 9)).astype(np.float32), C)
        (V, Vr), (M, Mr), (dV, dVr) = (stack(k, c, T, np.float32) for k, c in
                                       (("V", C), ("M", F), ("dV", C)))  # fmt: skip
        Y, dx = np.empty((F, n, H, H), np.float32), np.empty_like(x)
        pieces = [  # (function, arguments): run in the loop below, each timed alone
            (K.transform_input, (x, 1, th, tw, Vr)),
            (np.matmul, (U, V, M)),
            (K.transform_output, (Mr, th, tw, Y)),
            (K.transform_output_adjoint, (Y, th, tw, Mr)),
            (np.matmul, (U.transpose(0, 2, 1), M, dV)),
            (np.matmul, (M, V.transpose(0, 2, 1))),
            (K.transform_input_adjoint, (dVr, 1, th, tw, dx)),
        ]
        times = []
        for f, args in pieces:
            f(*args)
            ts = []
            for _ in range(rounds):
                t = time.perf_counter()
                f(*args)
                ts.append(time.perf_counter() - t)
            times.append(float(np.median(ts)) * 1e3 * batch / n)
        cells = " | ".join(f"{t:.2f}" for t in times)
        print(f"| {C}->{F} | {H}x{H} | {cells} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--parts", action="store_true", help="each piece of a Winograd layer")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.parts:
        return parts(args.rounds, args.batch)
    if args.worker:
        return worker(args.rounds, args.batch)
    for n in args.threads.split(","):
        env = dict(os.environ, NUMBA_NUM_THREADS=n)
        cmd = [sys.executable, __file__, "--worker", "--batch", str(args.batch)]
        subprocess.run(cmd + ["--rounds", str(args.rounds)], env=env, check=True)


if __name__ == "__main__":
    main()
