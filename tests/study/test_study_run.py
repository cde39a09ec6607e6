"""End to end through the CLI: a tiny study is killed mid-way and re-run; finished cells are not redone,
the interrupted cell resumes from its checkpoint, and the report has every cell."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ditkit.study import load_spec, write_report
from ditkit.study.runner import prepare
from ditkit.study.worker import run_cell

TINY = """
[study]
name = "tiny"
data = "mnist"
image_size = 32

[train]
global_batch_size = 4
lr = 1e-3
ema_decay = 0.9
ckpt_every = 5
log_every = 1
sample_every = 0

[budget]
steps = {steps}

[eval]
every = {every}
samples = 10
steps = 1

[sizes]
T = {{hidden_size = 32, depth = 1, num_heads = 2}}

[[grid]]
sizes = ["T"]
patch_sizes = {patches}
"""


def write_spec(tmp_path: Path, steps=30, every=15, patches="[8, 4]", extra="") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(TINY.format(steps=steps, every=every, patches=patches)) + extra)
    return path


def ditkit(*args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "ditkit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def status(out: Path, cell: str) -> dict:
    path = out / "cells" / cell / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def has_checkpoint(out: Path, cell: str) -> bool:
    folder = out / "cells" / cell / "checkpoints"
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())


@pytest.mark.slow  # a study killed mid-run and resumed, in subprocesses (~60 s)
def test_killed_study_resumes_without_redoing_finished_cells(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "study"
    first, second = "T-p4-adaln-zero", "T-p8-adaln-zero"  # the costlier cell runs first
    proc = ditkit("study", "run", str(spec), "--out", str(out), "--jobs", "1", "--threads", "1",
                  start_new_session=True)
    deadline = time.time() + 600
    try:  # kill the whole study (runner and worker) once the second cell has a checkpoint
        while not (status(out, first).get("state") == "done" and has_checkpoint(out, second)):
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert status(out, second)["state"] == "running"  # killed mid-cell: nobody recorded an end
    done_file = out / "cells" / first / "status.json"
    before = (done_file.stat().st_mtime_ns, (out / "cells" / first / "log.txt").read_text())

    proc = ditkit("study", "run", str(spec), "--out", str(out), "--jobs", "1", "--threads", "1")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "1 already finished, 1 to run" in stdout
    assert (done_file.stat().st_mtime_ns, (out / "cells" / first / "log.txt").read_text()) == before
    resumed = status(out, second)
    assert resumed["state"] == "done" and resumed["resumed"] and resumed["attempts"] == 2
    assert resumed["step"] == 30
    evals = json.loads((out / "cells" / second / "evals.json").read_text())
    assert sorted(evals, key=int) == ["15", "30"]

    write_report(str(out))  # in-process: the report CLI is tested in test_study_report.py
    rows = list(csv.DictReader(open(out / "report" / "results.csv")))
    assert sorted(r["cell"] for r in rows) == sorted([first, second])
    for row in rows:
        assert row["status"] == "done" and row["steps"] == "30" and row["images_seen"] == "120"
        assert float(row["final_fid"]) == float(row["fid@30"]) > 0
        assert float(row["train_compute_gflops"]) == pytest.approx(float(row["gflops"]) * 3 * 120, rel=1e-4)
    markdown = (out / "report" / "results.md").read_text()
    assert first in markdown and second in markdown and "Spearman" in markdown
    for plot in ("fid_vs_steps.png", "fid_vs_gflops.png", "fid_vs_compute.png"):
        assert (out / "report" / plot).stat().st_size > 1000


def test_failed_and_diverged_cells_are_recorded_with_their_reason(tmp_path):
    path = write_spec(tmp_path, steps=3, every=0, patches="[8]")
    path.write_text(path.read_text().replace("patch_sizes = [8]", "patch_sizes = [8]\nlr = [1e30]\n"
                                             "global_batch_size = [4, 100000]"))
    spec = load_spec(path)
    folders = dict(zip([c.name for c in spec.cells], prepare(spec, str(tmp_path / "study"))))
    diverged = run_cell(folders["T-p8-adaln-zero-l1e+30-gbs4"], threads=1)
    assert diverged["state"] == "diverged" and "loss became" in diverged["reason"]
    failed = run_cell(folders["T-p8-adaln-zero-l1e+30-gbs100000"], threads=1)
    assert failed["state"] == "failed" and "global batch" in failed["reason"]


def test_wall_clock_budget_stops_a_cell_at_an_evaluation(tmp_path):
    path = write_spec(tmp_path, steps=50, every=2, patches="[8]")
    path.write_text(path.read_text().replace("steps = 50", "steps = 50\nminutes = 0.0001"))
    spec = load_spec(path)
    out = tmp_path / "study"
    (folder,) = prepare(spec, str(out))
    result = run_cell(folder, threads=1)
    assert result["state"] == "done" and result["step"] == 2  # the first evaluation is past the budget
    assert "wall-clock budget of 0.0001 min reached at step 2" in result["reason"]
    assert has_checkpoint(out, spec.cells[0].name)  # the scored weights are kept
    assert sorted(json.loads((Path(folder) / "evals.json").read_text())) == ["2"]


def test_jobs_split_the_cores_and_costliest_cells_go_first(tmp_path, monkeypatch):
    import ditkit.study.runner as runner
    from ditkit.errors import DitkitError

    spec = load_spec(write_spec(tmp_path, patches="[8, 2, 4]"))
    calls = []
    monkeypatch.setattr(runner, "run_local", lambda dirs, jobs, threads, log: calls.append((dirs, jobs, threads)))
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    runner.run_study(spec, str(tmp_path / "a"), jobs=2, log=lambda line: None)
    runner.run_study(spec, str(tmp_path / "b"), jobs=16, log=lambda line: None)
    runner.run_study(spec, str(tmp_path / "c"), jobs=2, threads=3, log=lambda line: None)
    assert [(jobs, threads) for _, jobs, threads in calls] == [(2, 4), (16, 1), (2, 3)]
    assert [Path(d).name for d in calls[0][0]] == ["T-p2-adaln-zero", "T-p4-adaln-zero", "T-p8-adaln-zero"]
    with runner.study_lock(str(tmp_path / "a")):  # a second run on the same folder is refused
        with pytest.raises(DitkitError, match="another 'ditkit study run' is using"):
            runner.run_study(spec, str(tmp_path / "a"), log=lambda line: None)
    changed = load_spec(write_spec(tmp_path, steps=31, patches="[8, 2, 4]"))
    with pytest.raises(DitkitError, match="different settings"):
        runner.run_study(changed, str(tmp_path / "a"), log=lambda line: None)
