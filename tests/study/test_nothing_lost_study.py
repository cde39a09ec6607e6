"""Issue 28, item 6: SIGTERM to ``ditkit study run`` reaches its cell worker; the runner keeps the study's lock
until the worker has exited and recorded its end, so a re-run never trains the same cell twice at once."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SPEC = """
[study]
name = "long"
data = "mnist"
image_size = 32

[train]
global_batch_size = 2
ckpt_every = 2
log_every = 1
sample_every = 0

[budget]
steps = 100000

[eval]
every = 100000
samples = 4
steps = 1

[sizes]
T = {hidden_size = 32, depth = 1, num_heads = 2}

[[grid]]
sizes = ["T"]
patch_sizes = [8]
"""


def _status(out: Path) -> dict:
    path = out / "cells" / "T-p8-adaln-zero" / "status.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _locked(out: Path) -> bool:
    with open(out / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_reaches_the_worker_and_the_lock_is_kept_until_it_exits(tmp_path):
    spec, out = tmp_path / "long.toml", tmp_path / "study"
    spec.write_text(textwrap.dedent(SPEC))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    runner = subprocess.Popen([sys.executable, "-m", "ditkit", "study", "run", str(spec), "--out", str(out),
                               "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        cell = out / "cells" / "T-p8-adaln-zero" / "checkpoints"
        while not (_status(out).get("state") == "running" and cell.is_dir() and any(cell.glob("step-*"))):
            assert runner.poll() is None, runner.communicate()[0]
            assert time.time() < deadline
            time.sleep(0.05)
        worker = _status(out)["pid"]
        assert _alive(worker) and worker != runner.pid
        runner.send_signal(signal.SIGTERM)  # the runner only, as a service manager or `kill` would
        seen = []  # (lock held, worker alive just after): a free lock with the worker still alive is the bug
        while runner.poll() is None:
            locked = _locked(out)
            seen.append((locked, _alive(worker)))
            time.sleep(0.02)
        output = runner.communicate()[0]
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 128 + signal.SIGTERM, output
    assert seen and seen[0][0]  # the runner waited for the worker, holding the lock
    assert not [pair for pair in seen if pair == (False, True)]  # never free while the worker could still write
    assert not _alive(worker)  # the worker got the signal and exited before the runner did
    assert _status(out)["state"] == "interrupted" and _status(out)["pid"] is None
    assert "every worker has exited" in output and "Traceback" not in output
    assert not _locked(out)  # released once nothing writes
