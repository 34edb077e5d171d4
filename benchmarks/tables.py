"""Print the Markdown tables of RESULTS.md from the JSON that bench.py wrote.

    python benchmarks/tables.py                      # benchmarks/results.json
    python benchmarks/tables.py path/to/results.json

Nothing in RESULTS.md's tables is typed by hand: they are this script's output.
"""

import json
import sys
from pathlib import Path

SYSTEMS = [
    ("minicnn", "minicnn"),
    ("minicnn-layers", "minicnn reference engine"),
    ("numpy", "plain NumPy"),
]


def by_key(rows):
    """{(preset, batch): {system: row}}"""
    out = {}
    for r in rows:
        out.setdefault((r["preset"], r["batch"]), {})[r["system"]] = r
    return out


def speed_table(results, kind):
    has_torch = any(r["system"] == "torch" for res in results for r in res[kind])
    head = ["network", "batch", "threads"] + [name for _, name in SYSTEMS]
    head += ["PyTorch"] if has_torch else []
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for res in sorted(results, key=lambda r: -r["threads"]):
        for (preset, batch), group in sorted(by_key(res[kind]).items()):
            torch = group.get("torch", {}).get("images_per_s")
            best = max(r["images_per_s"] for r in group.values())
            cells = [preset, str(batch), str(res["threads"])]
            for system, _ in SYSTEMS + ([("torch", "")] if has_torch else []):
                r = group.get(system)
                if r is None:
                    cells.append("")
                    continue
                text = f"{r['images_per_s']:.0f}"
                if torch and system != "torch":
                    text += f" (x{r['images_per_s'] / torch:.2f})"
                cells.append(f"**{text}**" if r["images_per_s"] == best else text)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread_table(results):
    """Median and interquartile range (ms) of the training steps: how noisy each figure is."""
    lines = ["| network | batch | threads | system | median ms | p25-p75 ms | rounds |"]
    lines.append("|" + " --- |" * 7)
    for res in sorted(results, key=lambda r: -r["threads"]):
        for (preset, batch), group in sorted(by_key(res["train"]).items()):
            for system in ("minicnn", "torch"):
                r = group.get(system)
                if r is not None:
                    lines.append(
                        f"| {preset} | {batch} | {res['threads']} | {system} | "
                        f"{r['median_ms']:.1f} | {r['p25_ms']:.1f}-{r['p75_ms']:.1f} | "
                        f"{r['rounds']} |"
                    )
    return "\n".join(lines)


def gflops_lines(results):
    lines = []
    for res in sorted(results, key=lambda r: -r["threads"]):
        peak = res["matmul_peak_gflops"]
        for system in ("minicnn", "torch"):
            g = [r["gflops"] for r in res["train"] if r["system"] == system]
            if g:
                lines.append(
                    f"- {system}, {res['threads']} thread(s), training: {min(g):.0f}-{max(g):.0f} "
                    f"GFLOPS ({100 * min(g) / peak:.0f}-{100 * max(g) / peak:.0f}% of the "
                    f"{peak:.0f} GFLOPS matrix-multiply peak)"
                )
    return "\n".join(lines)


def memory_table(memory):
    presets = sorted({key.split()[0] for key in memory})
    systems = [("minicnn", "minicnn"), ("numpy", "plain NumPy"), ("torch", "PyTorch")]
    systems = [(s, n) for s, n in systems if any(f"{p} {s}" in memory for p in presets)]
    lines = ["| network | " + " | ".join(n for _, n in systems) + " |"]
    lines.append("|" + " --- |" * (len(systems) + 1))
    for p in presets:
        cells = [
            f"{memory[f'{p} {s}']['step_mib']:.1f}" if f"{p} {s}" in memory else ""
            for s, _ in systems
        ]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def layer_table(results, preset="paper", threads=None):
    res = (
        max(results, key=lambda r: r["threads"])
        if threads is None
        else next(r for r in results if r["threads"] == threads)
    )
    rows = res["layers"].get(preset, [])
    lines = [
        f"| step ({preset}, batch 32, {res['threads']} thread(s)) | forward ms | backward ms |"
    ]
    lines.append("| --- | --- | --- |")
    for r in rows:
        lines.append(f"| {r['layer']} | {r['forward_ms']:.2f} | {r['backward_ms']:.2f} |")
    return "\n".join(lines)


def main(path):
    data = json.loads(Path(path).read_text())
    results, memory, m = data["results"], data.get("memory", {}), data["machine"]
    print(f"Machine: {m}\n")
    print("## Training step, images per second (ratio to PyTorch)\n")
    print(speed_table(results, "train"))
    print("\n## Inference (evaluation mode), images per second (ratio to PyTorch)\n")
    print(speed_table(results, "infer"))
    print("\n## Spread of the training-step times\n")
    print(spread_table(results))
    print("\n## Effective speed\n")
    print(gflops_lines(results))
    if memory:
        print(
            "\n## Peak memory of a training step, batch 32 (MiB above the resident size before)\n"
        )
        print(memory_table(memory))
    for threads in sorted({r["threads"] for r in results}):
        for preset in ("paper", "paper13", "paper_bn"):
            print()
            print(layer_table(results, preset, threads))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results.json")
