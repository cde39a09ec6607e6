"""What a run shows while it trains: metrics.jsonl, TensorBoard, EMA sample grids, the loss curve."""

from __future__ import annotations

import json
import os

import torch

from ..errors import DitkitError
from ..fileio import atomic_path, atomic_write_text


def read_metrics(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsLog:
    """Append-only JSON lines; on resume, lines past the resumed step (written after the checkpoint
    by the interrupted run) are dropped so the log matches the weights."""

    def __init__(self, run_dir: str, resume_step: int | None, tensorboard: bool):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        if resume_step is None:
            atomic_write_text(self.path, "")
        else:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise DitkitError("--tensorboard needs the tensorboard package (pip install tensorboard)") from exc
            self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"), purge_step=resume_step)

    def log(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def grid_labels(num_classes: int, count: int) -> list[int] | None:
    """Fixed labels for progress grids: the classes in order, cycled (None for unconditional models)."""
    return None if num_classes == 0 else [i % num_classes for i in range(count)]


def save_sample_grid(ema_model, codec, path: str, *, count: int, steps: int, cfg_scale: float, seed: int = 0,
                     diffusion_config: dict | None = None) -> None:
    """Sample ``count`` images from the EMA with DDIM and a fixed seed and labels, so grids from
    different steps are directly comparable."""
    from ..pipelines import generate, make_grid
    from ..pipelines.images import save_png

    cfg = ema_model.config
    labels = grid_labels(cfg.num_classes, count)
    guided = cfg_scale if ema_model.null_class is not None else 1.0
    out = generate(ema_model, labels=labels, num_samples=None if labels else count, codec=codec, sampler="ddim",
                   steps=steps, cfg_scale=guided, seed=seed, batch_size=count, progress=False,
                   diffusion_config=diffusion_config)
    grid = make_grid(out.images)  # near-square, in label order 0, 1, 2, ...
    save_png(grid, path)


def plot_curves(metrics_path: str, png_path: str) -> None:
    """Loss (and any evaluation metrics) against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval" in r]
    eval_keys = sorted({k for r in evals for k in r["eval"] if isinstance(r["eval"][k], (int, float))})
    panels = 1 + len(eval_keys)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    ax = axes[0][0]
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["loss"] for r in train], label="loss", lw=1)
        for key in sorted({k for r in train for k in r if k.startswith("mse")}):  # DiT: mse; UniDiffuser: mse_img, ...
            ax.plot(steps, [r.get(key, float("nan")) for r in train], label=key, lw=1)
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training loss")
    ax.legend()
    for k, key in enumerate(eval_keys, start=1):
        pts = [(r["step"], r["eval"][key]) for r in evals if key in r["eval"]]
        axes[0][k].plot(*zip(*pts), marker="o")
        axes[0][k].set_title(key)
        axes[0][k].set_xlabel("step")
    fig.tight_layout()
    with atomic_path(png_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


@torch.no_grad()
def fork_rng_around(fn, *args, **kwargs):
    """Run ``fn`` without disturbing the global RNG streams, so sampling/eval never changes training."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        return fn(*args, **kwargs)
