"""What `python -m minicnn evaluate --split val` costs: wall time and peak memory, cold and warm.

    python benchmarks/bench_evaluate.py --model examples/models/paper-tiny-imagenet.npz \
        --data ../shared/data/tiny-imagenet-200.zip

Each run is the command itself in a child process, with an empty cache folder first (cold:
the split is decoded and cached) and then the same folder again (warm: read from the cache).
Peak memory is the child's maximum resident set (os.wait4). Reported: each run's wall time,
peak memory, the accuracy line it printed, and what the cache folder holds afterwards. The
goal for Tiny ImageNet's 10,000 validation images on two cores: under 15 s and 600 MB.
Nothing here asserts a time.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(model, data, split, cache, repeat):
    """Wall seconds (best of `repeat`), peak MiB (largest) and the last output of one command."""
    cmd = [sys.executable, "-m", "minicnn", "evaluate", model, "--data", data, "--split", split,
           "--no-progress"]  # fmt: skip
    env = dict(os.environ, MINICNN_CACHE=cache)
    best, peak, out = float("inf"), 0.0, ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the others'
        best = min(best, time.perf_counter() - t0)
        if status != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{out}")
        peak = max(peak, usage.ru_maxrss / 1024)  # KiB on Linux
    return best, peak, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (best wall time)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        for label, repeat in (("cold (decode + cache)", 1), ("warm (from the cache)", args.repeat)):
            seconds, mib, out = run(args.model, args.data, args.split, cache, repeat)
            figures = [line.strip() for line in out.splitlines() if "accuracy" in line]
            print(f"{label:<22} {seconds:6.1f} s  peak {mib:6.0f} MiB  {' | '.join(figures)}")
        held = sorted(Path(cache).iterdir())
        sizes = ", ".join(f"{p.name} ({p.stat().st_size / 2**20:.0f} MiB)" for p in held)
        print(f"cache folder afterwards: {sizes or 'empty'}")


if __name__ == "__main__":
    main()
