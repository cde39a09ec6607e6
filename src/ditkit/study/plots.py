"""The paper's study plots (small PNGs): FID against steps, Gflops, training compute; the block designs."""

from __future__ import annotations

import math
import os

from ..fileio import atomic_path

FIGSIZE, DPI = (6.4, 4.0), 80


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    return plt, fig, ax


def _save(plt, fig, ax, path: str, title: str, xlabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("FID (log)")
    ax.set_yscale("log")  # FIDs of a miniature span an order of magnitude
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=6)
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _curve(row: dict, x_of) -> tuple[list, list]:
    points = [(x_of(row, s), f) for s, f in sorted(row["fids"].items()) if f is not None and math.isfinite(f)]
    return [p[0] for p in points], [p[1] for p in points]


def _curves(rows, path, title, xlabel, x_of, log_x=False) -> bool:
    plt, fig, ax = _figure()
    drawn = False
    colors = plt.get_cmap("tab20").colors  # a distinct colour for up to 20 cells
    for i, row in enumerate(sorted(rows, key=lambda r: r["gflops"])):
        xs, ys = _curve(row, x_of)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=row["cell"], color=colors[i % len(colors)],
                    linestyle=("-", "--", ":")[i // len(colors) % 3])
            drawn = True
    if log_x:
        ax.set_xscale("log")
    _save(plt, fig, ax, path, title, xlabel)
    return drawn


def _fid_vs_gflops(rows, path) -> bool:
    plt, fig, ax = _figure()
    by_patch: dict = {}
    for row in rows:
        if row["final_fid"] is not None and math.isfinite(row["final_fid"]):
            by_patch.setdefault(row["axes"].get("patch_size"), []).append(row)
    for patch, members in sorted(by_patch.items(), key=lambda kv: str(kv[0])):
        ax.scatter([m["gflops"] for m in members], [m["final_fid"] for m in members], label=f"patch {patch}", s=18)
        for m in members:
            block = m["axes"].get("block")
            ax.annotate(f"{m['axes'].get('size')}/{patch}" + ("" if block == "adaln-zero" else f" {block}"),
                        (m["gflops"], m["final_fid"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    _save(plt, fig, ax, path, "Final FID vs forward Gflops", "Gflops per image (log)")
    return bool(by_patch)


def write_plots(rows: list[dict], folder: str, block_groups: list[list[dict]]) -> list[str]:
    """Write the plots into ``folder``; returns their file names (plots with nothing to show are skipped)."""
    made = []
    jobs = [
        ("fid_vs_steps.png", lambda p: _curves(rows, p, "FID vs training steps", "training steps",
                                               lambda r, s: s)),
        ("fid_vs_gflops.png", lambda p: _fid_vs_gflops(rows, p)),
        ("fid_vs_compute.png", lambda p: _curves(rows, p, "FID vs training compute",
                                                 "training compute (Gflops × 3 × images, log)",
                                                 lambda r, s: r["gflops"] * 3 * r["batch"] * s, log_x=True)),
    ]
    for group in block_groups[:1]:
        jobs.append(("blocks.png", lambda p, g=group: _curves(
            g, p, f"Block designs ({g[0]['axes'].get('size')}, patch {g[0]['axes'].get('patch_size')})",
            "training steps", lambda r, s: s)))
    for name, draw in jobs:
        path = os.path.join(folder, name)
        if draw(path):
            made.append(name)
        elif os.path.exists(path):
            os.remove(path)
    return made
