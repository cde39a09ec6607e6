"""Run one cell through the real training engine: ``python -m ditkit.study.worker CELL_DIR [--threads N]``.

The cell folder is the training run folder (checkpoints/, metrics.jsonl, samples/) plus the study's own files:
``cell.json`` (what to train), ``status.json`` (where it stands) and ``evals.json`` (FID by step). A folder
that already holds checkpoints resumes from the newest one (``resume="latest"``).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
import traceback

from ..errors import DitkitError
from .status import CELL_FILE, read_json, read_status, record_eval, write_status


class _WallClockBudgetReached(Exception):
    """Raised from the evaluation hook to stop a cell whose wall-clock budget is spent."""


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _has_checkpoint(cell_dir: str) -> bool:
    folder = os.path.join(cell_dir, "checkpoints")
    return os.path.isdir(folder) and any(not name.startswith(".") for name in os.listdir(folder))


def _make_eval_fn(cell_dir: str, cell: dict, evaluation: dict, budget_s: float | None, started: float):
    """FID of the EMA every ``evaluation['every']`` steps, recorded in evals.json; enforces the time budget."""
    from ..evaluation import make_training_eval_fn

    train = cell["train"]
    score = make_training_eval_fn(train["data"], evaluation["samples"], image_size=train["image_size"],
                                  codec=train.get("vae", "none"), sampler=evaluation["sampler"],
                                  steps=evaluation["steps"], cfg_scale=evaluation["cfg"], seed=train["seed"],
                                  extractor=evaluation.get("extractor", "auto"),
                                  batch_size=evaluation.get("batch_size", 64),
                                  diffusion_config=train.get("diffusion"), progress=False)

    def eval_fn(ema_model, step: int) -> dict:
        results = score(ema_model, step)
        record_eval(cell_dir, step, results)
        write_status(cell_dir, step=step, fid=results.get("fid"))
        if budget_s is not None and time.time() - started >= budget_s and step < cell["max_steps"]:
            raise _WallClockBudgetReached(step)
        return results

    eval_fn.extractor = getattr(score, "extractor", None)
    return eval_fn


def run_cell(cell_dir: str, threads: int | None = None) -> dict:
    """Train the cell in ``cell_dir`` to its budget (resuming if it has checkpoints); returns its final status."""
    from ..training import TrainConfig, train

    cell_dir = os.path.abspath(cell_dir)
    record = read_json(os.path.join(cell_dir, CELL_FILE))
    if record is None:
        raise DitkitError(f"{cell_dir} is not a study cell folder (no {CELL_FILE})")
    cell, evaluation = record["cell"], record["eval"]
    main = _is_main_rank()
    previous = read_status(cell_dir)
    spent = float(previous.get("wall_s", 0.0))
    resume = "latest" if _has_checkpoint(cell_dir) else None
    started = time.time()
    if main:
        write_status(cell_dir, state="running", reason=None, pid=os.getpid(), started=started,
                     attempts=int(previous.get("attempts", 0)) + 1, resumed=resume is not None)
    budget_s = cell["minutes"] * 60.0 - spent if cell.get("minutes") else None
    options = dict(cell["train"], out=cell_dir, resume=resume, threads=threads)
    if budget_s is not None:  # a cell stopped by its time budget keeps the weights it was scored with
        options["ckpt_every"] = math.gcd(options.get("ckpt_every", TrainConfig.ckpt_every), evaluation["every"])
    config = TrainConfig.from_dict(options)
    eval_fn = _make_eval_fn(cell_dir, cell, evaluation, budget_s, started) if evaluation["every"] else None
    state, reason, step = "done", None, cell["max_steps"]
    try:
        summary = train(config, eval_fn=eval_fn, eval_every=evaluation["every"],
                        command_line=[sys.executable, "-m", "ditkit.study.worker", cell_dir])
        step = summary.get("step", step)
    except _WallClockBudgetReached as stop:
        step, reason = int(stop.args[0]), f"wall-clock budget of {cell['minutes']:g} min reached at step {stop.args[0]}"
    except KeyboardInterrupt:
        state, reason = "interrupted", "stopped by a signal; the next run resumes it"
    except DitkitError as exc:
        diverged = "loss became" in str(exc) or "nan" in str(exc).lower().split()
        state, reason = ("diverged" if diverged else "failed"), str(exc)
    except Exception as exc:  # noqa: BLE001 - any crash is recorded and the study goes on
        traceback.print_exc()
        state, reason = "failed", f"{type(exc).__name__}: {exc}"
    if not main:
        return {"state": state}
    status = write_status(cell_dir, state=state, reason=reason, pid=None, finished=time.time(),
                          wall_s=spent + time.time() - started,
                          **({"step": step} if state == "done" else {}))
    return status


def _stop(signum, _frame):
    """SIGTERM / SIGHUP (and SIGINT) stop the cell as Ctrl-C does: recorded as interrupted, resumed next run. Later
    signals are ignored, so recording the end is not cut short (the runner's second signal is SIGKILL)."""
    for name in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(name, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    for name in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(name, _stop)
    parser = argparse.ArgumentParser(prog="python -m ditkit.study.worker", description="Run one study cell.")
    parser.add_argument("cell_dir")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        status = run_cell(args.cell_dir, args.threads)
    except DitkitError as exc:
        print(f"ditkit study worker: error: {exc}", file=sys.stderr)
        return 2
    return 0 if status["state"] in ("done", "diverged", "failed") else 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
