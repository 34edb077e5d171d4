"""Benchmark minicnn against a plain-NumPy path and PyTorch's CPU build, in one run.

    python benchmarks/bench.py                  # 1 and 2 threads, writes benchmarks/results.json
    python benchmarks/bench.py --threads 2 --rounds 7 --quick
    python benchmarks/bench.py --presets paper_bn --batches 32 --threads 2 --rounds 21

For each thread count a fresh worker process is started with NUMBA_NUM_THREADS,
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set (torch.set_num_threads likewise), so every
system gets the same cores. Inside a worker the systems are interleaved round by round
(minicnn, minicnn's reference engine, NumPy, PyTorch, minicnn, ...) so that noise from the
machine hits them alike; medians and the interquartile spread are reported. Peak memory
of a training step is measured in a separate process per system. Nothing here is a test:
no time is asserted anywhere. PyTorch is optional (`pip install torch==2.13.0`, the CPU
build); without it those columns are empty.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PRESETS = ["paper", "paper13", "paper_bn", "paper_res"]
NUMPY_PRESETS = ("paper", "paper13")  # the plain-NumPy baseline has no BatchNorm


def thread_env(threads):
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


# ---------------------------------------------------------------- worker side: the systems


def build_systems(preset, batch, classes=200, with_torch=True, only=None):
    """Returns {name: (train_step(), infer(x_big))}, the batch, and a correctness report."""
    import numpy as np

    import minicnn

    sys.path.insert(0, str(HERE))
    from numpy_reference import NumpyNet

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
    y = rng.integers(0, classes, batch)
    systems = {}

    def minicnn_system(fast):
        model = getattr(minicnn.models, preset)(num_classes=classes, seed=0)
        model.fast = fast
        loss = minicnn.SoftmaxCrossEntropy()
        opt = minicnn.Adam(model.parameters(), lr=1e-4)

        def step():
            loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward())
            opt.step()

        return step, lambda xb: model.forward(xb), model

    reference = getattr(minicnn.models, preset)(num_classes=classes, seed=0)
    if only in (None, "minicnn"):
        step, infer, _ = minicnn_system(True)
        systems["minicnn"] = (step, infer)
    if only in (None, "minicnn-layers"):
        step, infer, _ = minicnn_system(False)
        systems["minicnn-layers"] = (step, infer)
    if only in (None, "numpy") and preset in NUMPY_PRESETS:
        net = NumpyNet(reference)
        systems["numpy"] = (lambda: net.train_step(x, y), lambda xb: net.forward(xb))
    torch_net = None
    if with_torch and only in (None, "torch"):
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
            torch_net = torch_twin(reference)
            opt = torch.optim.Adam(torch_net.parameters(), lr=1e-4)
            lossf = torch.nn.CrossEntropyLoss()
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)

            def torch_step():
                torch_net.train()
                opt.zero_grad()
                lossf(torch_net(tx), ty).backward()
                opt.step()

            def torch_infer(xb):
                torch_net.eval()
                with torch.no_grad():
                    return torch_net(torch.from_numpy(xb)).numpy()

            systems["torch"] = (torch_step, torch_infer)
    return systems, x


def torch_twin(model):
    """The same network in PyTorch, with minicnn's weights copied in (nn.Sequential).

    A Residual becomes a module computing relu(branch(x) + shortcut(x)) (the shortcut nothing
    for the identity), as torchvision's BasicBlock does.
    """
    import torch
    import torch.nn as nn

    class Residual(nn.Module):
        def __init__(self, branch, shortcut, relu):
            super().__init__()
            self.branch, self.shortcut, self.relu = branch, shortcut, relu

        def forward(self, x):
            z = self.branch(x) + (x if self.shortcut is None else self.shortcut(x))
            return torch.relu(z) if self.relu else z

    def twin(layers):
        modules = []
        for layer in layers:
            modules += twin_layer(layer)
        return nn.Sequential(*modules)

    def twin_layer(layer):
        name = type(layer).__name__
        if name == "Conv2D":
            conv = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                stride=layer.stride,
                padding=layer.pad,
                bias=layer.b is not None,
            )
            conv.weight.data = torch.from_numpy(layer.W.data.copy())
            if layer.b is not None:
                conv.bias.data = torch.from_numpy(layer.b.data.copy())
            return [conv]
        if name == "BatchNorm2D":
            bn = nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
            bn.weight.data = torch.from_numpy(layer.gamma.data.copy())
            bn.bias.data = torch.from_numpy(layer.beta.data.copy())
            bn.running_mean.data = torch.from_numpy(layer.running_mean.copy())
            bn.running_var.data = torch.from_numpy(layer.running_var.copy())
            return [bn]
        if name == "Residual":
            shortcut = None if layer.shortcut is None else twin(layer.shortcut)
            return [Residual(twin(layer.branch), shortcut, layer.activation == "relu")]
        if name == "GlobalAvgPool2D":
            return [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if name == "Dense":
            lin = nn.Linear(layer.in_features, layer.out_features)
            lin.weight.data = torch.from_numpy(layer.W.data.T.copy())
            lin.bias.data = torch.from_numpy(layer.b.data.copy())
            return [lin]
        if name == "MaxPool2D":
            return [nn.MaxPool2d(layer.pool_size, layer.stride)]
        if name == "Dropout":
            return [nn.Dropout(layer.rate)]
        simple = {"ReLU": nn.ReLU, "Flatten": nn.Flatten}
        if name not in simple:
            raise TypeError(f"no PyTorch twin for {layer!r}")
        return [simple[name]()]

    return twin(model.layers)


def flops(model, batch):
    """(forward, training) floating-point operations of one batch: 2 per multiply-add.

    Training = forward + weight gradients + input gradients of every layer but the first.
    Multiply-adds per layer from minicnn.layers.cost (BatchNorm: one per value).
    """
    from minicnn.layers.cost import macs as layer_macs

    shape, fwd, first = (3, 64, 64), 0, None
    for layer in model:
        macs = batch * layer_macs(layer, shape)
        if macs and first is None:
            first = macs
        fwd += macs
        shape = layer.output_shape(shape)
    return 2 * fwd, 2 * (3 * fwd - first)


def timed_rounds(funcs, rounds, budget):
    """Interleave funcs round by round; returns {name: [seconds, ...]}.

    Each timed call comes right after an untimed call of the same function, back to back as
    in a training loop: on this VM a core left idle for a few hundred milliseconds (while a
    one-threaded system ran) makes the next two-threaded call up to 1.7x slower (measured:
    a `paper` step 30 ms back to back, 53 ms after a 0.3 s sleep).
    """
    times = {name: [] for name in funcs}
    for f in funcs.values():  # warm-up: JIT, caches, allocator
        f()
        f()
    start = time.perf_counter()
    for r in range(rounds):
        for name, f in funcs.items():
            if r >= 3 and sum(times[name]) > budget:
                continue  # a slow system gets fewer rounds (at least 3)
            f()
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
        if time.perf_counter() - start > 4 * budget:
            break
    return times


def stats(ts, items):
    import numpy as np

    ts = np.array(ts)
    med = float(np.median(ts))
    return {
        "median_ms": med * 1e3,
        "p25_ms": float(np.percentile(ts, 25)) * 1e3,
        "p75_ms": float(np.percentile(ts, 75)) * 1e3,
        "rounds": len(ts),
        "images_per_s": items / med,
    }


def matmul_peak():
    import numpy as np

    a = np.random.default_rng(0).standard_normal((1536, 1536)).astype(np.float32)
    a @ a
    ts = []
    for _ in range(7):
        t = time.perf_counter()
        a @ a
        ts.append(time.perf_counter() - t)
    return 2 * 1536**3 / float(np.median(ts)) / 1e9


def layer_times(preset, batch, rounds):
    """Each step of the fast engine (a fused block, or a layer) on its own, float32."""
    import numpy as np

    import minicnn

    model = getattr(minicnn.models, preset)(num_classes=200)
    x = np.random.default_rng(0).standard_normal((batch, 3, 64, 64)).astype(np.float32)
    steps = minicnn.fast.plan(model.layers)
    inputs, h = [], x
    for _, layer in steps:
        inputs.append(h)
        h = layer.forward(h, training=True)
    rows = []
    for i, (first, layer) in enumerate(steps):
        xi = inputs[i]
        out = layer.forward(xi, training=True)
        dout = np.ones_like(out)
        fw, bw = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            layer.forward(xi, training=True)
            fw.append(time.perf_counter() - t)
            t = time.perf_counter()
            layer.backward(dout, input_grad=i > 0)
            bw.append(time.perf_counter() - t)
        rows.append(
            {
                "layer": f"#{first} " + " ".join(map(repr, getattr(layer, "layers", [layer]))),
                "forward_ms": float(np.median(fw)) * 1e3,
                "backward_ms": float(np.median(bw)) * 1e3,
            }
        )
    return rows


def correctness(preset):
    """Largest difference of logits between minicnn and the NumPy / PyTorch twins."""
    import numpy as np

    import minicnn

    sys.path.insert(0, str(HERE))
    from numpy_reference import NumpyNet

    model = getattr(minicnn.models, preset)(num_classes=200, seed=0)
    x = np.random.default_rng(1).standard_normal((8, 3, 64, 64)).astype(np.float32)
    ours = model.forward(x)
    out = {}
    if preset in NUMPY_PRESETS:
        out["numpy"] = float(np.abs(ours - NumpyNet(model).forward(x)).max())
    try:
        import torch

        with torch.no_grad():
            theirs = torch_twin(model).eval()(torch.from_numpy(x)).numpy()
        out["torch"] = float(np.abs(ours - theirs).max())
    except ImportError:
        pass
    out["logit_scale"] = float(np.abs(ours).max())
    return out


def worker(args):
    peak = matmul_peak()  # before minicnn sets OpenBLAS to one thread: BLAS at `threads`
    import numba
    import numpy as np

    import minicnn

    result = {
        "threads": args.threads,
        "numba_threads": numba.get_num_threads(),
        "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS"),
        "minicnn_threads": minicnn.threads.get_num_threads(),
        "matmul_peak_gflops": peak,
        "train": [],
        "infer": [],
        "layers": {},
        "correctness": {},
    }
    presets = ["paper"] if args.quick else args.presets.split(",")
    batches = [32] if args.quick else [int(b) for b in args.batches.split(",")]
    for preset in presets:
        result["correctness"][preset] = correctness(preset)
        model = getattr(minicnn.models, preset)()
        for batch in batches:
            systems, _ = build_systems(preset, batch)
            times = timed_rounds({k: v[0] for k, v in systems.items()}, args.rounds, 20.0)
            fwd, train = flops(model, batch)
            for name, ts in times.items():
                row = {"preset": preset, "batch": batch, "system": name, **stats(ts, batch)}
                row["gflops"] = train / (row["median_ms"] / 1e3) / 1e9
                result["train"].append(row)
        systems, _ = build_systems(preset, 32)
        xb = np.random.default_rng(2).standard_normal((256, 3, 64, 64)).astype(np.float32)
        infers = {k: (lambda f=v[1], xb=xb: f(xb)) for k, v in systems.items()}
        times = timed_rounds(infers, args.rounds, 20.0)
        fwd, _ = flops(model, 256)
        for name, ts in times.items():
            row = {"preset": preset, "batch": 256, "system": name, **stats(ts, 256)}
            row["gflops"] = fwd / (row["median_ms"] / 1e3) / 1e9
            result["infer"].append(row)
        result["layers"][preset] = layer_times(preset, 32, max(5, args.rounds // 2))
    try:
        import torch

        result["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads()}
    except ImportError:
        result["torch"] = None
    json.dump(result, sys.stdout)


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def memory_worker(args):
    """Peak resident memory of training steps, above the resident size before the first.

    A batch-2 warm-up first loads the compiled kernels and the libraries' pools, so the
    peak that follows is that of the batch-32 steps themselves.
    """
    systems, _ = build_systems(args.preset, 2, only=args.system)
    systems[args.system][0]()
    systems, _ = build_systems(args.preset, 32, only=args.system)
    step = systems[args.system][0]
    base = rss_kib()
    for _ in range(3):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    json.dump(
        {"base_mib": base / 1024, "peak_mib": peak / 1024, "step_mib": (peak - base) / 1024},
        sys.stdout,
    )


# ---------------------------------------------------------------- parent side: report


def run_worker(extra, threads):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *extra]
    out = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{out.stderr}")
    return json.loads(out.stdout)


def cpu_features():
    """The vector instruction sets that decide the speed of a float32 matrix multiply."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "fma", "avx512f", "amx_tile") if f in flags)


def cache_size(level):
    """Size of the level-2 or level-3 cache of cpu0, as Linux reports it ("2048K")."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")) if base.exists() else []:
        if (index / "level").read_text().strip() == str(level):
            return (index / "size").read_text().strip()
    return "unknown"


BLAS_INFO = {  # what to ask OpenBLAS: NumPy's bundled build first, then a plain one
    "config": ("scipy_openblas_get_config64_", "openblas_get_config"),
    "kernel": ("scipy_openblas_get_corename64_", "openblas_get_corename"),
}


def blas_info():
    """OpenBLAS's build string and the kernel it chose for this CPU (corename), if loaded."""
    import ctypes

    from minicnn.fast.threads import blas_libraries

    for path in blas_libraries():
        lib = ctypes.CDLL(path)
        info = {}
        for key, names in BLAS_INFO.items():
            function = next((getattr(lib, n) for n in names if hasattr(lib, n)), None)
            if function is not None:
                function.restype = ctypes.c_char_p
                info[key] = function().decode().strip()
        if info:
            return info
    return {}


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import numpy

    return {
        "cpu": cpu,
        "isa": cpu_features(),
        "l2_per_core": cache_size(2),
        "l3": cache_size(3),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "openblas": blas_info(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def report(results, memory):
    lines = []
    for res in results:
        t = res["threads"]
        peak = res["matmul_peak_gflops"]
        lines.append(
            f"\n## {t} thread(s): minicnn pieces {res['minicnn_threads']}, Numba "
            f"{res['numba_threads']}, BLAS env {res['blas_threads_env']}, torch {res['torch']}; "
            f"float32 matmul peak at {t} BLAS thread(s) {peak:.0f} GFLOPS"
        )
        for kind in ("train", "infer"):
            title = "training step" if kind == "train" else "inference (evaluation mode)"
            lines.append(
                f"\n{title}: images/s (median ms [p25-p75]), ratio to torch, GFLOPS, "
                f"% of matmul peak"
            )
            rows = res[kind]
            for key in sorted({(r["preset"], r["batch"]) for r in rows}):
                group = {r["system"]: r for r in rows if (r["preset"], r["batch"]) == key}
                torch_ips = group.get("torch", {}).get("images_per_s")
                cells = []
                for name, r in group.items():
                    ratio = f" x{r['images_per_s'] / torch_ips:.2f}" if torch_ips else ""
                    cells.append(
                        f"{name} {r['images_per_s']:.0f}/s ({r['median_ms']:.1f} "
                        f"[{r['p25_ms']:.1f}-{r['p75_ms']:.1f}] ms){ratio} "
                        f"{r['gflops']:.0f} GF {100 * r['gflops'] / peak:.0f}%"
                    )
                lines.append(f"  {key[0]:8s} b{key[1]:<4d} " + " | ".join(cells))
        for preset, rows in res["layers"].items():
            lines.append(f"\nminicnn step by step, {preset}, batch 32 (ms forward / backward)")
            for r in rows:
                lines.append(f"  {r['layer']:32s} {r['forward_ms']:7.2f} {r['backward_ms']:7.2f}")
        lines.append(f"\nlargest |logit difference| vs minicnn: {res['correctness']}")
    if memory:
        lines.append(
            "\npeak memory of a training step at batch 32, above the resident size before it (MiB):"
        )
        for key, m in memory.items():
            lines.append(
                f"  {key:28s} {m['step_mib']:7.1f}  (resident before: {m['base_mib']:.0f})"
            )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="paper at batch 32 only")
    ap.add_argument("--presets", default=",".join(PRESETS), help="comma-separated networks")
    ap.add_argument("--batches", default="32,128", help="comma-separated training batches")
    ap.add_argument("--json", default=str(HERE / "results.json"))
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="paper", help=argparse.SUPPRESS)
    ap.add_argument("--system", default="minicnn", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_worker:
        return memory_worker(args)
    if args.worker:
        args.threads = int(os.environ["NUMBA_NUM_THREADS"])
        return worker(args)
    threads = [int(t) for t in args.threads.split(",")]
    extra = ["--rounds", str(args.rounds), "--presets", args.presets, "--batches", args.batches]
    extra += ["--quick"] if args.quick else []
    results = []
    for t in threads:
        print(f"running the {t}-thread worker ...", file=sys.stderr, flush=True)
        results.append(run_worker(extra, t))
    memory = {}
    if not args.no_memory:
        for preset in ["paper"] if args.quick else args.presets.split(","):
            for system in ("minicnn", "numpy", "torch"):
                try:
                    memory[f"{preset} {system}"] = run_worker(
                        ["--memory-worker", "--preset", preset, "--system", system], max(threads)
                    )
                except (RuntimeError, KeyError, json.JSONDecodeError):
                    pass  # torch not installed
    text = report(results, memory)
    print(text)
    out = {"machine": machine(), "results": results, "memory": memory}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
