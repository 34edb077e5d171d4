"""Data-parallel speed on one machine: 1 process x 2 threads against 2 MPI ranks x 1 thread.

    python benchmarks/bench_mpi.py                   # paper, paper13 at batch 32 and 128
    python benchmarks/bench_mpi.py --rounds 1 --steps 2 --presets paper --batches 32  # check

Needs the [mpi] extra (mpiexec beside this Python, or on PATH). For each network and global
batch B it times training steps (forward, backward, Adam; random 64x64 images, 200 classes):

- one process, 2 threads, the whole batch;
- `mpiexec -n 2`, each rank 1 thread and B/2 images, with minicnn.distributed's allreduce;
  the time spent inside allreduce_gradients per step (waiting for the slower rank included),
  and the allreduce alone after a barrier (the communication itself); bytes per step: the
  flat gradient buffer, and what each rank sends (2 (P-1)/P of it).

Then it projects to 8 and 64 machines (each machine: one rank of 2 threads, B images) with a
ring allreduce model, T = 2 (P-1) latency + 2 (P-1)/P bytes / bandwidth, added to the
measured step time (minicnn does not overlap communication with backward), and says how
large the per-machine batch must be for 90% efficiency. Medians over --rounds rounds of
--steps steps, after warm-up. Writes benchmarks/results-mpi.json and prints markdown tables
for RESULTS.md. Time it on a quiet machine: nothing else running.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCAL_ONLY = {"UCX_TLS": "self,sm", "UCX_NET_DEVICES": "lo", "HYDRA_IFACE": "lo"}
NETWORKS = {  # the projection's networks: (name, bandwidth bytes/s, latency s)
    "10 GbE": (1.25e9, 25e-6),
    "100 Gb/s InfiniBand": (12.5e9, 2e-6),
}
MACHINES = (8, 64)


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


# ---------------------------------------------------------------- worker: time the steps


def time_steps(preset, batch, rounds, steps, threads):
    """Median seconds per step (and per allreduce) of `preset` at global batch `batch`."""
    import numpy as np

    import minicnn
    from minicnn import distributed

    dist = distributed.world()
    minicnn.threads.set_num_threads(threads)
    model = getattr(minicnn.models, preset)(num_classes=200, seed=0)
    optimizer = minicnn.Adam(model.parameters(), lr=1e-4)
    loss_fn = minicnn.SoftmaxCrossEntropy()
    dist.start(model, optimizer)
    part = batch // dist.size + (dist.rank < batch % dist.size)
    rng = np.random.default_rng(dist.rank)
    x = rng.standard_normal((part, 3, 64, 64)).astype(np.float32)
    y = rng.integers(0, 200, part)
    share = part / batch

    def step():
        loss_fn.forward(model.forward(x, training=True), y)
        model.backward(loss_fn.backward() * share)
        t0 = time.perf_counter()
        dist.allreduce_gradients(model, 0.0, 0)
        t1 = time.perf_counter()
        optimizer.step()
        return t1 - t0

    for _ in range(2):  # warm-up: compilation, buffers
        step()
    step_s, inside_s, alone_s = [], [], []
    for _ in range(rounds):
        if dist.size > 1:
            dist.comm.Barrier()
        t0 = time.perf_counter()
        waits = [step() for _ in range(steps)]
        step_s.append((time.perf_counter() - t0) / steps)
        inside_s.append(sum(waits) / steps)
        if dist.size > 1:  # the allreduce alone: everyone arrives together
            dist.comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(steps):
                dist.allreduce_gradients(model, 0.0, 0)
            alone_s.append((time.perf_counter() - t0) / steps)
    params = sum(p.size for p in model.parameters())
    buffer_bytes = (params + 2) * 4  # float32 gradients and the loss and hit count
    padded = -(-(params + 2) // dist.size) * dist.size * 4
    return {
        "preset": preset,
        "batch": batch,
        "ranks": dist.size,
        "threads": threads,
        "step_s": median(step_s),
        "images_per_s": batch / median(step_s),
        "allreduce_in_step_s": median(inside_s) if dist.size > 1 else 0.0,
        "allreduce_alone_s": median(alone_s) if alone_s else 0.0,
        "buffer_bytes": buffer_bytes,
        "sent_bytes_per_rank": 2 * (dist.size - 1) / dist.size * padded,
        "rounds": rounds,
        "steps": steps,
    }


# ---------------------------------------------------------------- driver


def find_mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def run_worker(preset, batch, rounds, steps, ranks, threads):
    args = [sys.executable, __file__, "--worker", preset, str(batch), str(rounds), str(steps)]
    args += [str(threads)]
    env = dict(os.environ) | {"NUMBA_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": "1"}
    if ranks > 1:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            raise SystemExit("error: no mpiexec: pip install -e '.[mpi]'")
        args = [mpiexec, "-n", str(ranks)] + args
        env |= LOCAL_ONLY
    else:  # one process, even if this driver was started by an MPI launcher
        env = {k: v for k, v in env.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"error: {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[0][len("RESULT ") :])


def ring_allreduce_s(P, nbytes, bandwidth, latency):
    """Ring allreduce of `nbytes` over P machines: 2 (P-1) steps of nbytes / P each."""
    return 2 * (P - 1) * latency + 2 * (P - 1) / P * nbytes / bandwidth


def projection(one):
    """Rows for 8 and 64 machines from a 1-process measurement (step time, gradient bytes)."""
    rows = []
    for name, (bandwidth, latency) in NETWORKS.items():
        for P in MACHINES:
            t_ar = ring_allreduce_s(P, one["buffer_bytes"], bandwidth, latency)
            step = one["step_s"] + t_ar
            per_image = one["step_s"] / one["batch"]  # compute per image on one machine
            need = 9 * t_ar / per_image  # 90%: compute >= 9 x allreduce
            rows.append({
                "network": name, "machines": P, "allreduce_ms": 1e3 * t_ar,
                "step_ms": 1e3 * step, "efficiency": one["step_s"] / step,
                "images_per_s": P * one["batch"] / step, "batch_for_90": need,
            })  # fmt: skip
    return rows


def markdown(results, rows):
    out = [
        "| network | batch | 1 process x 2 threads | 2 ranks x 1 thread | ratio | allreduce "
        "in step | allreduce alone | gradient bytes | sent per rank |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for one, two in results:
        out.append(
            f"| {one['preset']} | {one['batch']} | {one['images_per_s']:.0f} img/s | "
            f"{two['images_per_s']:.0f} img/s | x{two['images_per_s'] / one['images_per_s']:.2f}"
            f" | {1e3 * two['allreduce_in_step_s']:.2f} ms | "
            f"{1e3 * two['allreduce_alone_s']:.2f} ms | {one['buffer_bytes'] / 1e6:.2f} MB | "
            f"{two['sent_bytes_per_rank'] / 1e6:.2f} MB |"
        )
    out += [
        "",
        "Projection (a model, not a measurement): machines of this kind, one rank of 2 threads "
        "each, B images per machine per step, ring allreduce not overlapped with backward.",
        "",
        "| network | batch per machine | machines | allreduce | step | efficiency | img/s | "
        "batch per machine for 90% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (one, _), proj in zip(results, rows):
        for r in proj:
            out.append(
                f"| {one['preset']}, {r['network']} | {one['batch']} | {r['machines']} | "
                f"{r['allreduce_ms']:.2f} ms | {r['step_ms']:.1f} ms | {r['efficiency']:.0%} | "
                f"{r['images_per_s']:,.0f} | {r['batch_for_90']:.0f} |"
            )
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="paper,paper13")
    p.add_argument("--batches", default="32,128")
    p.add_argument("--rounds", type=int, default=7, help="rounds per setting (median)")
    p.add_argument("--steps", type=int, default=5, help="steps per round")
    p.add_argument("--json", default=str(HERE / "results-mpi.json"))
    p.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        preset, batch, rounds, steps, threads = args.worker
        result = time_steps(preset, int(batch), int(rounds), int(steps), int(threads))
        from minicnn import distributed

        if distributed.is_root:
            print("RESULT " + json.dumps(result), flush=True)
        return
    results, rows = [], []
    for preset in args.presets.split(","):
        for batch in map(int, args.batches.split(",")):
            one = run_worker(preset, batch, args.rounds, args.steps, ranks=1, threads=2)
            two = run_worker(preset, batch, args.rounds, args.steps, ranks=2, threads=1)
            results.append((one, two))
            rows.append(projection(one))
            print(f"{preset} batch {batch}: {one['images_per_s']:.0f} img/s on 1 x 2, "
                  f"{two['images_per_s']:.0f} on 2 x 1", flush=True)  # fmt: skip
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "networks": {k: {"bandwidth_bytes_per_s": b, "latency_s": t}
                     for k, (b, t) in NETWORKS.items()},
        "measured": [{"one_process": one, "two_ranks": two} for one, two in results],
        "projection": rows,
    }  # fmt: skip
    Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    print("\n" + markdown(results, rows))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
