"""What happens every N steps: log, checkpoint, sample grid, evaluation (FID). Each hook is ``hook(state)``
with a ``due(step)`` test; the loop calls the due ones after a step.

The losses of the steps since the last log stay on the device in a :class:`Window`; they are read (one
host synchronisation) only at logging and checkpoint steps.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager

import torch

from ..distributed import Dist
from ..errors import DitkitError
from .outputs import fork_rng_around, save_sample_grid
from .state import TrainState


class Window:
    """Per-step loss tensors since the last log, and the training time they took (hook time excluded): wall
    seconds, and this process's CPU seconds (``cpu_s`` in the log, summed over the run since this process
    started: what time-to-quality is measured in, whatever else the machine runs)."""

    def __init__(self, d: Dist, images_per_step: int):
        self.d, self.images_per_step = d, images_per_step
        self.stats: list[dict[str, torch.Tensor]] = []
        self.last_checkpoint: str | None = None
        self.cpu_seconds, self.cpu_start = 0.0, time.process_time()
        self.reset()

    def reset(self) -> None:
        self.stats, self.seconds, self.start = [], 0.0, time.perf_counter()

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        self.stats.append(stats)

    @contextmanager
    def paused(self):
        """Time spent inside (checkpoints, grids, FID) is not training time."""
        self.seconds += time.perf_counter() - self.start
        self.cpu_seconds += time.process_time() - self.cpu_start
        try:
            yield
        finally:
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def means(self) -> dict[str, float]:
        """Mean of each loss over the window and over ranks; the last step's grad norm. Syncs the host."""
        keys = [k for k in self.stats[-1] if k != "grad_norm"]
        values = torch.stack([torch.stack([s[k] for s in self.stats]).double().mean() for k in keys])
        values = self.d.mean(values).tolist()
        out = dict(zip(keys, values))
        if "grad_norm" in self.stats[-1]:
            out["grad_norm"] = self.d.mean(self.stats[-1]["grad_norm"].reshape(1)).item()
        return out

    def check_finite(self, step: int) -> None:
        """Raise (on every rank alike) if any loss of the window is NaN or infinite: nothing is saved after."""
        if not self.stats:
            return
        total = self.d.mean(torch.stack([s["loss"] for s in self.stats]).float().sum().reshape(1)).item()
        if not math.isfinite(total):
            raise self.nonfinite(total, step)

    def nonfinite(self, value: float, step: int) -> DitkitError:
        where = (f"The last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint
                 else "No checkpoint was written yet")
        return DitkitError(f"the loss became {value} by step {step}; training stopped without saving it. "
                           f"{where} (try a lower --lr, or --precision fp32)")

    def images_per_second(self) -> float:
        elapsed = self.seconds + time.perf_counter() - self.start
        return len(self.stats) * self.images_per_step / max(elapsed, 1e-9)


def every(n: int, max_steps: int):
    """A ``due(step)`` test: every ``n`` steps and at the last step (never when ``n`` is 0)."""
    return lambda step: bool(n) and (step % n == 0 or step == max_steps)


class LogHook:
    """A metrics.jsonl line (rank 0), the progress bar's loss; the window's one host synchronisation."""

    def __init__(self, window: Window, metrics, bar, log_every: int, max_steps: int):
        self.window, self.metrics, self.bar = window, metrics, bar
        self.due = every(log_every, max_steps)
        self.last_loss: float | None = None

    def __call__(self, state: TrainState) -> None:
        w = self.window
        means = w.means()
        if not math.isfinite(means["loss"]):
            raise w.nonfinite(means["loss"], state.step)
        ips = w.images_per_second()
        self.last_loss = w.d.mean(w.stats[-1]["loss"].float().reshape(1)).item()
        if self.metrics is not None:
            self.metrics.log({"step": state.step, "epoch": state.epoch, **means,
                              "lr": state.optimizer.param_groups[0]["lr"], "img_per_s": ips,
                              "cpu_s": w.cpu_seconds + time.process_time() - w.cpu_start})
            self.bar.set_postfix(loss=f"{means['loss']:.4f}", img_s=f"{ips:.1f}")
        w.reset()


class CheckpointHook:
    """Save the TrainState (all ranks take part; rank 0 writes), never a state trained on a NaN loss."""

    def __init__(self, window: Window, checkpoint_dir: str, ckpt_every: int, keep_last: int, max_steps: int):
        self.window, self.checkpoint_dir, self.keep_last = window, checkpoint_dir, keep_last
        self.due = every(ckpt_every, max_steps)

    def __call__(self, state: TrainState) -> None:
        self.window.check_finite(state.step)
        self.window.last_checkpoint = state.save(self.checkpoint_dir, self.window.d, self.keep_last)


class CallbackHook:
    """``callback()`` every ``n`` steps and at the last step."""

    def __init__(self, callback, n: int, max_steps: int):
        self.callback, self.due = callback, every(n, max_steps)

    def __call__(self, state: TrainState) -> None:
        self.callback()


class SampleGridHook:
    """An EMA sample grid with a fixed seed and labels (rank 0), comparable across steps."""

    def __init__(self, run_dir: str, codec, config):
        self.run_dir, self.codec, self.config = run_dir, codec, config
        self.due = every(config.sample_every, config.max_steps)

    def __call__(self, state: TrainState) -> None:
        c = self.config
        path = os.path.join(self.run_dir, "samples", f"step-{state.step:07d}.png")
        fork_rng_around(save_sample_grid, state.ema, self.codec, path, count=c.sample_count, steps=c.sample_steps,
                        cfg_scale=c.sample_cfg, seed=c.seed, diffusion_config=c.diffusion.to_dict())


class EvalHook:
    """``eval_fn(ema, step) -> dict`` (e.g. FID) on rank 0; its numbers go to metrics.jsonl under "eval"."""

    def __init__(self, eval_fn, metrics, eval_every: int, max_steps: int):
        self.eval_fn, self.metrics = eval_fn, metrics
        self.due = every(eval_every, max_steps)

    def __call__(self, state: TrainState) -> None:
        results = fork_rng_around(self.eval_fn, state.ema, state.step) or {}
        self.metrics.log({"step": state.step, "eval": {k: float(v) for k, v in results.items()}})
