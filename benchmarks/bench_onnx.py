"""Inference of minicnn against ONNX Runtime on the same exported model, interleaved in one run.

    python benchmarks/bench_onnx.py          # 1 and 2 threads, batch 1, 32, 256, every preset
    python benchmarks/bench_onnx.py --threads 2 --batches 256 --presets paper_bn --rounds 21

Each preset (200 classes, seed 0) is exported with minicnn.onnx.export(normalize="metadata"),
so both systems take the same normalised float32 batch and give the same probabilities
(checked before timing: within 1e-5). For each thread count a fresh worker process is
started with bench.py's thread_env (Numba, OpenBLAS and OpenMP threads set), and ONNX
Runtime's session gets the same count of intra-op threads (sequential execution, its default
graph optimisations, which fold Conv + BatchNormalization). Inside a worker the two systems
are interleaved call by call with bench.py's timed_rounds; medians and the interquartile
spread are reported, with the ratio ONNX Runtime / minicnn in images per second (above 1:
ONNX Runtime faster). The machine is recorded as bench.py records it (CPU, ISA, caches,
OpenBLAS kernel). Nothing here is a test: no time is asserted anywhere.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (thread_env, timed_rounds, stats, machine: one way to measure)

PRESETS = bench.PRESETS
BATCHES = "1,32,256"


def systems(preset, batch, threads, folder):
    """{"minicnn": infer(), "onnxruntime": infer()} on one batch, and the largest
    |probability difference| between them."""
    import numpy as np
    import onnxruntime as ort

    import minicnn
    import minicnn.onnx

    model = getattr(minicnn.models, preset)(num_classes=200, seed=0)
    path = Path(folder) / f"{preset}.onnx"
    if not path.exists():
        minicnn.onnx.export(model, path, normalize="metadata")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, 64, 64)).astype(np.float32)

    def with_minicnn():
        return model.probabilities(model.forward(x))

    def with_onnxruntime():
        return session.run(None, {"x": x})[0]

    difference = float(np.abs(with_minicnn() - with_onnxruntime()).max())
    return {"minicnn": with_minicnn, "onnxruntime": with_onnxruntime}, difference


def worker(args):
    import onnxruntime as ort

    import minicnn

    threads = int(os.environ["NUMBA_NUM_THREADS"])
    result = {
        "threads": threads,
        "minicnn_threads": minicnn.threads.get_num_threads(),
        "onnxruntime": ort.__version__,
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                funcs, difference = systems(preset, batch, threads, folder)
                if difference > 1e-5:
                    raise RuntimeError(f"{preset}: probabilities differ by {difference:.2e}")
                times = bench.timed_rounds(funcs, args.rounds, args.budget)
                for name, ts in times.items():
                    row = {"preset": preset, "batch": batch, "system": name}
                    row |= bench.stats(ts, batch) | {"max_difference": difference}
                    result["rows"].append(row)
    json.dump(result, sys.stdout)


def report(results):
    """A markdown table: one row per network, batch and thread count."""
    lines = [
        "| network | batch | threads | minicnn images/s (ms) | ONNX Runtime images/s (ms) "
        "| ONNX Runtime / minicnn |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        rows = {(r["preset"], r["batch"], r["system"]): r for r in res["rows"]}
        for preset, batch, system in rows:
            if system != "minicnn":
                continue
            a, b = rows[preset, batch, "minicnn"], rows[preset, batch, "onnxruntime"]
            cells = [
                f"{r['images_per_s']:.0f} ({r['median_ms']:.2f} "
                f"[{r['p25_ms']:.2f}-{r['p75_ms']:.2f}])"
                for r in (a, b)
            ]
            ratio = b["images_per_s"] / a["images_per_s"]
            lines.append(f"| {preset} | {batch} | {res['threads']} | {cells[0]} | {cells[1]} "
                         f"| x{ratio:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per system and case")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated networks")
    ap.add_argument("--batches", default=BATCHES, help="comma-separated batch sizes")
    ap.add_argument("--json", default=str(HERE / "results-onnx.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    extra = ["--rounds", str(args.rounds), "--budget", str(args.budget)]
    extra += ["--presets", args.presets, "--batches", args.batches]
    results = []
    for t in (int(t) for t in args.threads.split(",")):
        print(f"running the {t}-thread worker ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *extra]
        out = subprocess.run(cmd, env=bench.thread_env(t), capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"benchmark worker failed:\n{out.stderr}")
        results.append(json.loads(out.stdout))
    print(report(results))
    record = {"machine": bench.machine(), "results": results}
    Path(args.json).write_text(json.dumps(record, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
