"""The Train-monitor tab's work: read a run folder that ``ditkit train`` writes (while it trains).

A run folder holds ``train_config.json``, ``metrics.jsonl`` (one JSON line per log step, with ``"eval"``
records for FID and friends), sample grids of the EMA model (``samples/step-*.png``) and ``checkpoints/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DitkitError

GRID_DIRS = ("samples", "grids")  # where training writes its EMA grids


def find_runs(runs_dir: str | Path | None, limit: int = 20) -> list[Path]:
    """Run folders (with a metrics.jsonl) under ``runs_dir`` (one or two levels deep), newest first."""
    if runs_dir is None or not Path(runs_dir).is_dir():
        return []
    root = Path(runs_dir)
    found = {p.parent for pattern in ("metrics.jsonl", "*/metrics.jsonl", "*/*/metrics.jsonl")
             for p in root.glob(pattern)}
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:limit]


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:  # the last line may be half written while the run trains
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


@dataclass
class RunStatus:
    folder: Path
    train: list[dict] = field(default_factory=list)  # records with a loss
    evals: list[dict] = field(default_factory=list)  # {"step", "eval": {...}}
    config: dict = field(default_factory=dict)
    grid: Path | None = None

    @property
    def step(self) -> int:
        return max((r.get("step", 0) for r in self.train + self.evals), default=0)

    @property
    def max_steps(self) -> int | None:
        return (self.config.get("config") or {}).get("max_steps")

    def summary(self) -> str:
        """A few lines of Markdown: progress, latest loss, throughput, latest evaluation numbers."""
        lines = [f"**{self.folder}**", f"step {self.step}" + (f" of {self.max_steps}" if self.max_steps else "")]
        if self.train:
            last = self.train[-1]
            lines.append(f"loss {last['loss']:.4f} (mse {last.get('mse', float('nan')):.4f})")
            if "img_per_s" in last:
                batch = (self.config.get("config") or {}).get("global_batch_size")
                per_step = f", {last['img_per_s'] / batch:.2f} steps/s" if batch else ""
                lines.append(f"throughput {last['img_per_s']:.1f} images/s{per_step}")
        if self.evals:
            last = self.evals[-1]
            numbers = ", ".join(f"{k} {v:.3f}" for k, v in last["eval"].items() if isinstance(v, (int, float)))
            lines.append(f"evaluation at step {last['step']}: {numbers}")
        if not self.train and not self.evals:
            lines.append("no metrics logged yet")
        return "  \n".join(lines)


def latest_grid(folder: Path) -> Path | None:
    grids = [p for name in GRID_DIRS for p in (folder / name).glob("*.png")]
    return max(grids, key=lambda p: (p.name, p.stat().st_mtime)) if grids else None


def read_run(folder: str | Path) -> RunStatus:
    """The run's state now; DitkitError when ``folder`` is not a run folder."""
    folder = Path(str(folder).strip()).expanduser()
    if not str(folder).strip() or not folder.is_dir():
        raise DitkitError(f"no run folder at {folder}")
    if not (folder / "metrics.jsonl").is_file() and not (folder / "train_config.json").is_file():
        raise DitkitError(f"{folder} is not a training run folder (no metrics.jsonl or train_config.json)")
    records = _read_jsonl(folder / "metrics.jsonl")
    try:
        config = json.loads((folder / "train_config.json").read_text())
    except (OSError, ValueError):
        config = {}
    return RunStatus(folder=folder, train=[r for r in records if "loss" in r],
                     evals=[r for r in records if isinstance(r.get("eval"), dict)], config=config,
                     grid=latest_grid(folder))


def plot_run(status: RunStatus):
    """A matplotlib Figure: the loss (log scale) and one panel per evaluation metric (FID, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    keys = sorted({k for r in status.evals for k, v in r["eval"].items() if isinstance(v, (int, float))})
    fig = Figure(figsize=(4.5 * (1 + len(keys)), 3.2), layout="tight")
    axes = fig.subplots(1, 1 + len(keys), squeeze=False)[0]
    if status.train:
        steps = [r["step"] for r in status.train]
        axes[0].plot(steps, [r["loss"] for r in status.train], lw=1, label="loss")
        if all("mse" in r for r in status.train):
            axes[0].plot(steps, [r["mse"] for r in status.train], lw=1, label="mse")
        axes[0].set_yscale("log")
        axes[0].legend()
    axes[0].set_title("training loss")
    axes[0].set_xlabel("step")
    for ax, key in zip(axes[1:], keys):
        points = [(r["step"], r["eval"][key]) for r in status.evals if key in r["eval"]]
        ax.plot(*zip(*points), marker="o")
        ax.set_title(key)
        ax.set_xlabel("step")
    return fig
