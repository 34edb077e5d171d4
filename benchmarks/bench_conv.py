"""im2col or Winograd? Every 3x3 stride-1 convolution shape of the presets, timed both ways.

    python benchmarks/bench_conv.py                 # batch 32, 1 and 2 threads
    python benchmarks/bench_conv.py --batch 128 --rounds 21 --threads 1

For each distinct Conv2D shape of paper, paper13 and paper_bn (64x64 images), one training
step of a Conv2D -> ReLU block (forward, then backward with the input gradient) runs on the
fast engine's im2col path (ChunkedConv) and on its Winograd path (WinogradConv), interleaved
call by call in one process per thread count; medians. minicnn.fast.winograd.conv_matmul
uses Winograd from WINOGRAD_MIN_CHANNELS input channels and WINOGRAD_MIN_SIZE output pixels
on: this table is what that rule rests on. Run it on a quiet machine.
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.rounds, args.batch)
    for n in args.threads.split(","):
        env = dict(os.environ, NUMBA_NUM_THREADS=n)
        cmd = [sys.executable, __file__, "--worker", "--batch", str(args.batch)]
        subprocess.run(cmd + ["--rounds", str(args.rounds)], env=env, check=True)


if __name__ == "__main__":
    main()
