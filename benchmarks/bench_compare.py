"""Two versions of minicnn, timed against each other in one interleaved run.

    python benchmarks/bench_compare.py --before 0881126          # that commit vs HEAD
    python benchmarks/bench_compare.py --before HEAD~3 --after HEAD --threads 1 --rounds 21
    python benchmarks/bench_compare.py --before HEAD~1 --presets paper_res --layers
    python benchmarks/bench_compare.py --before HEAD~1 --infer-batches 1,32,256

Both commits are checked out into temporary git worktrees (clean trees, whatever the
working tree holds). For each thread count,
one worker process per version is started (PYTHONPATH picks which minicnn it imports, with
NUMBA_NUM_THREADS and OPENBLAS_NUM_THREADS set) and both stay alive; the parent then asks
them in turn for one timed call at a time (before, after, before, ...), so that noise from
the machine hits both alike. Reported: the median of each and the ratio after / before
(above 1 is faster). Cases: training step of paper, paper13 and paper_bn at batch 32 and
128, inference (model.forward in evaluation mode) at batch 256 or at each batch of
--infer-batches, and (--layers) each step of the fast engine's plan at batch 32, forward
then backward, as bench.py's step table. Nothing here is a test.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PRESETS = ("paper", "paper13", "paper_bn")  # --presets: paper_res too, where both versions have it


INFER_BATCHES = "256"  # --infer-batches: inference cases, e.g. 1,32,256


def cases(presets, infer_batches=INFER_BATCHES):
    kinds = [("train", 32), ("train", 128)] + [("infer", int(b)) for b in infer_batches.split(",")]
    return [(p, kind, b) for p in presets for kind, b in kinds]


def step_calls(preset, batch=32):
    """(label, call) for each step of the fast engine's plan: its forward, then backward."""
    import numpy as np

    import minicnn

    model = getattr(minicnn.models, preset)(num_classes=200, seed=0)
    h = np.random.default_rng(0).standard_normal((batch, 3, 64, 64)).astype(np.float32)
    calls = []
    for i, (first, step) in enumerate(minicnn.fast.plan(model.layers)):
        x, h = h, step.forward(h, training=True)
        label = f"#{first} " + " ".join(map(repr, getattr(step, "layers", [step])))
        dout = np.ones_like(h)

        def call(step=step, x=x, dout=dout, input_grad=i > 0):
            step.forward(x, training=True)
            step.backward(dout, input_grad=input_grad)

        calls.append(((preset, label, batch), call))
    return calls


def serve():
    """Worker: build every case once, then answer "case index" lines with seconds taken."""
    import numpy as np

    import minicnn

    presets = sys.argv[sys.argv.index("--presets") + 1].split(",")
    infer_batches = sys.argv[sys.argv.index("--infer-batches") + 1]
    rng = np.random.default_rng(0)
    calls, labels = [], cases(presets, infer_batches)
    for preset, kind, batch in cases(presets, infer_batches):
        model = getattr(minicnn.models, preset)(num_classes=200, seed=0)
        x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        y = rng.integers(0, 200, batch)
        loss, opt = minicnn.SoftmaxCrossEntropy(), minicnn.Adam(model.parameters(), lr=1e-4)

        def step(model=model, x=x, y=y, loss=loss, opt=opt):
            loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward())
            opt.step()

        calls.append(step if kind == "train" else (lambda model=model, x=x: model.forward(x)))
    if "--layers" in sys.argv:
        for preset in presets:
            for label, call in step_calls(preset):
                labels.append(label)
                calls.append(call)
    for f in calls:  # warm-up: JIT, caches, allocator
        f()
        f()
    print(json.dumps({"ready": minicnn.__file__, "cases": labels}), flush=True)
    for line in sys.stdin:
        f = calls[int(line)]
        t = time.perf_counter()
        f()
        print(json.dumps(time.perf_counter() - t), flush=True)


def start(path, threads, layers, presets, infer_batches):
    env = dict(os.environ, PYTHONPATH=str(path))
    for var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", "--presets", presets]
    cmd += ["--infer-batches", infer_batches]
    cmd += ["--layers"] * layers
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(proc.stdout.readline())
    return proc, [tuple(case) for case in ready["cases"]]


def ask(proc, case):
    proc.stdin.write(f"{case}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git commit of the version to compare with")
    ap.add_argument("--after", default="HEAD", help="git commit of the new version")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", default=str(HERE / "results-compare.json"))
    ap.add_argument("--layers", action="store_true", help="also each step at batch 32")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated networks")
    ap.add_argument("--infer-batches", default=INFER_BATCHES,
                    help="comma-separated batch sizes of the inference cases")  # fmt: skip
    args = ap.parse_args()
    import numpy as np

    revs = {"before": args.before, "after": args.after}
    for name, rev in revs.items():
        revs[name] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {name: Path(tmp) / name for name in revs}
        for name, rev in revs.items():
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[name]), rev],
                check=True, capture_output=True,
            )  # fmt: skip
            own = trees[name] / "minicnn" / "kernels"  # as setup.cfg installs kernels/
            if not (trees[name] / "minicnn" / "_kernels.py").exists() and not own.exists():
                own.symlink_to(Path("..", "kernels"), target_is_directory=True)
        try:
            for threads in [int(t) for t in args.threads.split(",")]:
                started = {
                    name: start(trees[name], threads, args.layers, args.presets, args.infer_batches)
                    for name in revs
                }
                procs = {name: proc for name, (proc, _) in started.items()}
                cases = started["after"][1]
                assert cases == started["before"][1], "the two versions plan other steps"
                for case, (preset, kind, batch) in enumerate(cases):
                    times = {name: [] for name in procs}
                    for _ in range(args.rounds):
                        for name, proc in procs.items():
                            times[name].append(ask(proc, case))
                    med = {k: float(np.median(v)) for k, v in times.items()}
                    row = dict(threads=threads, preset=preset, kind=kind, batch=batch)
                    row.update({f"{k}_ms": v * 1e3 for k, v in med.items()})
                    row["ratio"] = med["before"] / med["after"]
                    rows.append(row)
                    print(
                        f"{threads} thread(s) {preset:8s} {kind[:60]} b{batch:<4d} before "
                        f"{row['before_ms']:8.1f} ms  after {row['after_ms']:8.1f} ms  "
                        f"after/before speed x{row['ratio']:.3f}",
                        flush=True,
                    )
                for proc in procs.values():
                    proc.stdin.close()
                    proc.wait()
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)])
    sys.path.insert(0, str(HERE))
    from bench import machine

    out = {"machine": machine(), **revs, "rows": rows}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        main()
