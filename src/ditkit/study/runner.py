"""``run_study``: lay out the study folder, skip finished cells, run the rest locally or on Slurm.

    OUT/study.json             the resolved spec (every cell expanded)
    OUT/cells/NAME/            one training run folder per cell, plus cell.json, status.json, evals.json, log.txt

A study folder is locked while a run uses it, so two runs never train the same cell at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from ..errors import DitkitError
from ..fileio import atomic_write_json, check_replaceable, check_writable
from .spec import StudySpec
from .status import CELL_FILE, FINAL_STATES, LOG_FILE, read_json, read_status, write_status

STUDY_FILE = "study.json"


STUDY_WHAT = "a study folder (its study.json from `ditkit study run`)"


def is_study_folder(folder) -> bool:
    """Whether ``folder`` is a study folder (its own marker: study.json with cells and a ditkit version)."""
    study = read_json(os.path.join(folder, STUDY_FILE))
    return isinstance(study, dict) and "cells" in study and "ditkit_version" in study


def cell_dir(out: str, name: str) -> str:
    return os.path.join(out, "cells", name)


@contextmanager
def study_lock(out: str):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, ".lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DitkitError(f"another 'ditkit study run' is using {out}; wait for it or stop it first") from None
        yield


def prepare(spec: StudySpec, out: str) -> list[str]:
    """Write study.json and each cell's cell.json; refuse a folder made from different cell settings."""
    from ..version import __version__

    os.makedirs(os.path.join(out, "cells"), exist_ok=True)
    dirs = []
    for cell in spec.cells:
        folder = cell_dir(out, cell.name)
        record = {"cell": cell.to_dict(), "eval": spec.eval, "study": spec.name, "ditkit_version": __version__}
        existing = read_json(os.path.join(folder, CELL_FILE))
        if existing is not None and _settings(existing) != _settings(record):
            raise DitkitError(f"{folder} was made from different settings for cell {cell.name}; "
                              "use a new --out for a changed study")
        if existing is None:
            atomic_write_json(os.path.join(folder, CELL_FILE), record)
        dirs.append(folder)
    atomic_write_json(os.path.join(out, STUDY_FILE), dict(spec.to_dict(), ditkit_version=__version__))
    return dirs


def _settings(record: dict) -> str:
    cell = record["cell"]
    return json.dumps([cell["train"], cell["model_config"], cell.get("minutes"), record["eval"]],
                      sort_keys=True, default=str)


def cells_to_run(spec: StudySpec, out: str, retry_failed: bool = False) -> list:
    """The cells still to train, the most expensive first (so parallel jobs finish close together).

    Failed, diverged and Slurm-submitted cells count as finished unless ``retry_failed``."""
    todo = []
    for cell in spec.cells:
        state = read_status(cell_dir(out, cell.name)).get("state")
        if state == "done" or (state in (*FINAL_STATES, "submitted") and not retry_failed):
            continue
        todo.append(cell)
    return sorted(todo, key=lambda c: -c.gflops * c.max_steps)


def run_study(spec: StudySpec, out: str, *, jobs: int = 1, threads: int | None = None, retry_failed: bool = False,
              cluster=None, log=print) -> dict:
    """Run every unfinished cell; returns {cell name: final state}. ``cluster``: a SlurmOptions to submit instead."""
    if jobs < 1:
        raise DitkitError(f"--jobs must be at least 1, got {jobs}")
    out = os.path.abspath(out)
    check_replaceable(out, is_study_folder, STUDY_WHAT)  # a folder of anyone else's is never written into
    check_writable(out)
    with study_lock(out):
        prepare(spec, out)
        todo = cells_to_run(spec, out, retry_failed)
        skipped = len(spec.cells) - len(todo)
        log(f"study {spec.name}: {len(spec.cells)} cells, {skipped} already finished, {len(todo)} to run -> {out}")
        if cluster is not None:
            from .cluster import submit

            submit([cell_dir(out, c.name) for c in todo], cluster, out, log=log)
        elif todo:
            per_job = threads or max(1, (os.cpu_count() or 1) // jobs)
            run_local([cell_dir(out, c.name) for c in todo], jobs, per_job, log=log)
    return {c.name: read_status(cell_dir(out, c.name)).get("state") for c in spec.cells}


def run_local(dirs: list[str], jobs: int, threads: int, log=print) -> None:
    """One worker subprocess per cell, at most ``jobs`` at a time, ``threads`` torch threads each.

    SIGTERM, SIGINT or SIGHUP to the runner is passed to every worker (a second one kills them); the runner
    waits for them to exit and record their state, so the study's lock is held until no worker writes, then
    stops with the signal's exit status."""
    queue, running, total = list(dirs), {}, len(dirs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    finished = 0
    with _passing_signals(running, log) as stopping:
        while queue or running:
            while queue and len(running) < jobs and not stopping:
                folder = queue.pop(0)
                log_file = open(os.path.join(folder, LOG_FILE), "a")
                proc = subprocess.Popen([sys.executable, "-m", "ditkit.study.worker", folder, "--threads",
                                         str(threads)], stdout=log_file, stderr=subprocess.STDOUT, env=env)
                running[proc] = (folder, log_file, time.time())
                log(f"  started {os.path.basename(folder)} ({threads} thread{'s' if threads > 1 else ''})")
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                folder, log_file, began = running.pop(proc)
                log_file.close()
                finished += 1
                status = _settle(folder, proc.returncode)
                log(f"  [{finished}/{total}] {os.path.basename(folder)}: {_describe(status, time.time() - began)}")
    if stopping:
        log(f"study stopped by signal {stopping[0]}; every worker has exited, the next run resumes")
        raise SystemExit(128 + stopping[0])


@contextmanager
def _passing_signals(running: dict, log):
    """While the block runs, a stop signal is passed on to the running workers (the second one as SIGKILL) and
    recorded in the yielded list, so the loop starts no new cell and ends once the workers have exited."""
    stopping: list[int] = []

    def forward(signum, _frame):
        hard = bool(stopping)
        stopping.append(signum)
        for proc in list(running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if hard else signum)
        log(f"  signal {signum}: {'killing' if hard else 'stopping'} {len(running)} worker(s); waiting for them")

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield stopping
        return
    names = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
    previous = {name: signal.signal(name, forward) for name in names}
    try:
        yield stopping
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)


def _settle(folder: str, returncode: int) -> dict:
    """A worker that died without recording its end (killed, crashed hard) is recorded here."""
    status = read_status(folder)
    if status.get("state") == "running":
        if returncode < 0:
            return write_status(folder, state="interrupted", pid=None,
                                reason=f"the worker was stopped by signal {-returncode}; the next run resumes it")
        return write_status(folder, state="failed", pid=None,
                            reason=f"the worker exited with code {returncode} (see {LOG_FILE})")
    return status


def _describe(status: dict, seconds: float) -> str:
    state = status.get("state")
    text = f"{state} in {seconds:.0f} s"
    if status.get("fid") is not None and state == "done":
        text += f", FID {status['fid']:.2f}"
    if status.get("reason"):
        text += f" ({status['reason']})"
    return text
