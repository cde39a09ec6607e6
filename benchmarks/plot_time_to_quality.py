"""FID and class accuracy against training CPU seconds, one line per run, from time_to_quality.py's JSON lines.

    python benchmarks/plot_time_to_quality.py runs/ttq-*.jsonl --target-fid 37.9 --out docs/recipe-fid-vs-cpu.png

Each input file holds the lines ``benchmarks/time_to_quality.py`` printed for one run (lines without a step,
such as its summary, are skipped); the label is the run folder's name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def read_points(path: str) -> tuple[str, list[dict]]:
    points = [json.loads(line) for line in open(path) if line.strip()]
    points = sorted((p for p in points if "step" in p and p.get("cpu_s") is not None), key=lambda p: p["cpu_s"])
    label = os.path.basename(points[0]["run"].rstrip("/")) if points else os.path.basename(path)
    return label, points


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+")
    p.add_argument("--target-fid", type=float, default=37.9)
    p.add_argument("--target-accuracy", type=float, default=0.985)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    fig, (ax_fid, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for path in args.inputs:
        label, points = read_points(path)
        cpu = [pt["cpu_s"] for pt in points]
        ax_fid.plot(cpu, [pt["fid"] for pt in points], marker="o", label=label)
        ax_acc.plot(cpu, [100 * pt["class_accuracy"] for pt in points], marker="o", label=label)
    ax_fid.axhline(args.target_fid, color="grey", linestyle="--", label=f"target FID {args.target_fid}")
    ax_acc.axhline(100 * args.target_accuracy, color="grey", linestyle="--",
                   label=f"target {100 * args.target_accuracy:g}%")
    ax_fid.set(xlabel="training CPU seconds", ylabel="FID (MNIST classifier features)", yscale="log")
    ax_acc.set(xlabel="training CPU seconds", ylabel="class accuracy (%)")
    for ax in (ax_fid, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
