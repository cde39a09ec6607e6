"""Each cell's ``status.json``, always written atomically so a killed study never leaves a torn file.

States: ``pending`` (not started), ``running`` (a worker is on it, or was when the study was killed),
``interrupted`` (stopped by a signal; it resumes), ``done``, ``failed`` and ``diverged`` (final; the reason is
recorded and the study goes on).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from ..fileio import atomic_write_json

STATUS_FILE = "status.json"
CELL_FILE = "cell.json"
EVALS_FILE = "evals.json"
LOG_FILE = "log.txt"
FINAL_STATES = ("done", "failed", "diverged")


def read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read_status(cell_dir: str) -> dict[str, Any]:
    return read_json(os.path.join(cell_dir, STATUS_FILE), None) or {"state": "pending"}


def write_status(cell_dir: str, **changes) -> dict[str, Any]:
    """Merge ``changes`` into the cell's status and write it atomically; returns the new status."""
    status = read_status(cell_dir)
    status.update(changes, updated=time.time(), host=socket.gethostname())
    atomic_write_json(os.path.join(cell_dir, STATUS_FILE), status)
    return status


def read_evals(cell_dir: str) -> dict[int, dict[str, float]]:
    """The cell's evaluations by step (a resumed run that re-evaluates a step overwrites it)."""
    raw = read_json(os.path.join(cell_dir, EVALS_FILE), {}) or {}
    return {int(step): values for step, values in sorted(raw.items(), key=lambda kv: int(kv[0]))}


def record_eval(cell_dir: str, step: int, values: dict[str, float]) -> None:
    evals = read_evals(cell_dir)
    evals[int(step)] = {k: float(v) for k, v in values.items()}
    atomic_write_json(os.path.join(cell_dir, EVALS_FILE), {str(k): v for k, v in sorted(evals.items())})
