"""``write_report``: the study's table (CSV and Markdown), its statistics and the paper's plots.

Training compute is counted as the paper does: forward Gflops × 3 (forward + backward) × images seen.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings

from ..errors import DitkitError
from ..fileio import atomic_write_text, check_replaceable, check_writable
from ..training import TrainConfig
from .spec import Cell
from .status import read_evals, read_json, read_status

AXES_SHOWN = ("size", "patch_size", "block", "seed")


def collect(out: str) -> list[dict]:
    """One row per cell of the study in ``out``: its cost, FIDs by step, final FID and status."""
    study = read_json(os.path.join(out, "study.json"))
    if study is None:
        raise DitkitError(f"{out} is not a study folder (no study.json); run 'ditkit study run SPEC --out {out}'")
    rows = []
    for raw in study["cells"]:
        cell = Cell.from_dict(raw)
        folder = os.path.join(out, "cells", cell.name)
        status, evals = read_status(folder), read_evals(folder)
        batch = cell.train.get("global_batch_size", TrainConfig.global_batch_size)
        steps = int(status.get("step") or 0) if status.get("state") == "done" else max(evals, default=0)
        final = evals[max(evals)].get("fid") if evals and status.get("state") == "done" else None
        rows.append({"cell": cell.name, "axes": cell.axes, "gflops": cell.gflops, "params": cell.params,
                     "batch": batch, "steps": steps, "images": steps * batch,
                     "train_compute": cell.gflops * 3 * steps * batch,
                     "fids": {s: v.get("fid") for s, v in evals.items()}, "final_fid": final,
                     "status": status.get("state", "pending"), "reason": status.get("reason") or "",
                     "wall_s": status.get("wall_s")})
    return rows


def spearman(rows: list[dict]) -> tuple[float, float, int] | None:
    """Spearman rank correlation between Gflops and final FID over finished cells (None below 3 cells)."""
    from scipy.stats import spearmanr

    pairs = [(r["gflops"], r["final_fid"]) for r in rows if _finite(r["final_fid"])]
    if len(pairs) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spearmanr([p[0] for p in pairs], [p[1] for p in pairs])
    return float(result.statistic), float(result.pvalue), len(pairs)


def block_groups(rows: list[dict]) -> list[list[dict]]:
    """Cells identical except for their block design (two or more designs), each sorted by final FID."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        key = repr(sorted((k, v) for k, v in row["axes"].items() if k != "block"))
        groups.setdefault(key, []).append(row)
    out = []
    for members in groups.values():
        if len({m["axes"]["block"] for m in members}) > 1:
            out.append(sorted(members, key=lambda r: r["final_fid"] if _finite(r["final_fid"]) else math.inf))
    return out


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def eval_steps(rows: list[dict]) -> list[int]:
    return sorted({s for r in rows for s in r["fids"]})


def to_csv(rows: list[dict]) -> str:
    steps = eval_steps(rows)
    extra_axes = sorted({k for r in rows for k in r["axes"]} - set(AXES_SHOWN))
    header = (["cell", *AXES_SHOWN, *extra_axes, "gflops", "params", "steps", "images_seen", "train_compute_gflops"]
              + [f"fid@{s}" for s in steps] + ["final_fid", "status", "wall_s", "reason"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in rows:
        writer.writerow([r["cell"], *(r["axes"].get(k, "") for k in (*AXES_SHOWN, *extra_axes)),
                         f"{r['gflops']:.6g}", r["params"], r["steps"], r["images"], f"{r['train_compute']:.6g}",
                         *(_num(r["fids"].get(s)) for s in steps), _num(r["final_fid"]), r["status"],
                         _num(r["wall_s"], ".0f"), r["reason"]])
    return buffer.getvalue()


def _num(value, fmt: str = ".3f") -> str:
    return "" if value is None else format(value, fmt)


def to_markdown(rows: list[dict], plots: list[str] = ()) -> str:
    steps = eval_steps(rows)
    lines = ["| cell | Gflops | params | train compute (Gflops) | " + " | ".join(f"FID @{s}" for s in steps)
             + " | final FID | status |", "|---" * (6 + len(steps)) + "|"]
    for r in sorted(rows, key=lambda r: r["gflops"]):
        status = r["status"] + (f": {r['reason']}" if r["status"] in ("failed", "diverged") else "")
        lines.append(f"| {r['cell']} | {r['gflops']:.4f} | {r['params']:,} | {r['train_compute']:.3g} | "
                     + " | ".join(_num(r["fids"].get(s), ".2f") or "–" for s in steps)
                     + f" | {_num(r['final_fid'], '.2f') or '–'} | {status} |")
    lines += ["", _spearman_sentence(rows), ""]
    for group in block_groups(rows):
        ranked = [f"{m['axes']['block']} ({_num(m['final_fid'], '.2f') or m['status']})" for m in group]
        lines.append(f"Block designs at {group[0]['axes']['size']}, patch {group[0]['axes']['patch_size']}, "
                     f"best first by final FID: " + " < ".join(ranked) + ".")
    lines += [""] + [f"![{name}]({name})" for name in plots]
    return "\n".join(lines).rstrip() + "\n"


def _spearman_sentence(rows: list[dict]) -> str:
    result = spearman(rows)
    if result is None:
        return "Spearman correlation between Gflops and final FID: fewer than 3 finished cells."
    rho, p, n = result
    text = f"Spearman correlation between Gflops and final FID: ρ = {rho:.3f} (p = {p:.2g}, {n} cells)."
    blocks = sorted({r["axes"].get("block") for r in rows})
    for block in blocks if len(blocks) > 1 else []:  # the scaling grid alone, without the block comparison
        within = spearman([r for r in rows if r["axes"].get("block") == block])
        if within is not None:
            text += f" Among the {within[2]} {block} cells: ρ = {within[0]:.3f} (p = {within[1]:.2g})."
    return text


REPORT_WHAT = "a study report folder (results.csv from `ditkit study report`)"


def is_report_folder(folder) -> bool:
    """Whether ``folder`` holds an earlier report (its own marker: results.csv's header)."""
    try:
        with open(os.path.join(folder, "results.csv"), encoding="utf-8") as f:
            return f.readline().startswith("cell,")
    except (OSError, UnicodeDecodeError):
        return False


def write_report(out: str, report_dir: str | None = None) -> dict:
    """Write results.csv, results.md and the plots; returns the paths and the statistics."""
    from .plots import write_plots

    rows = collect(out)
    report_dir = report_dir or os.path.join(out, "report")
    check_replaceable(report_dir, is_report_folder, REPORT_WHAT)  # its files are rewritten: only ours, or new
    check_writable(report_dir)
    os.makedirs(report_dir, exist_ok=True)
    plots = write_plots(rows, report_dir, block_groups(rows))
    atomic_write_text(os.path.join(report_dir, "results.csv"), to_csv(rows))
    atomic_write_text(os.path.join(report_dir, "results.md"), to_markdown(rows, plots))
    return {"dir": report_dir, "cells": len(rows), "finished": sum(r["status"] == "done" for r in rows),
            "spearman": spearman(rows), "plots": plots, "blocks": block_groups(rows)}
