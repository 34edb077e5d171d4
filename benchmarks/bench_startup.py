"""How long a run waits before training starts: import, then Numba's compile or cache load.

    python benchmarks/bench_startup.py

Each measurement is a fresh Python process that imports minicnn and takes one training step
of the paper network (batch 32), with NUMBA_CACHE_DIR pointed at a new, empty folder: the
first process compiles every kernel ("cold"), the next ones load them from that cache
("warm"), which is what a second run of examples/train_paper.py does. Nothing here asserts
a time.
"""

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import minicnn
t1 = time.perf_counter()
model = minicnn.models.paper(num_classes=200)
loss, opt = minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters())
x = np.random.default_rng(0).standard_normal((32, 3, 64, 64)).astype(np.float32)
y = np.arange(32) % 200
loss.forward(model.forward(x, training=True), y)
model.backward(loss.backward())
opt.step()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t2 - t1}))
"""


def run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache_dir:
        rows = [("cold (empty cache)", run(cache_dir))]
        rows += [(f"warm (cached), run {i}", run(cache_dir)) for i in (1, 2, 3)]
    print(f"{'':26s} {'import s':>9s} {'first step s':>13s}")
    for name, r in rows:
        print(f"{name:26s} {r['import_s']:9.2f} {r['first_step_s']:13.2f}")


if __name__ == "__main__":
    main()
