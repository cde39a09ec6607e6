"""Slurm job arrays through submitit, checked without a cluster: the executor is a stand-in that records calls."""

import json
import sys

import pytest

from ditkit.errors import DitkitError
from ditkit.study import SlurmOptions, parse_spec, run_study
from ditkit.study.cluster import cell_command, executor_parameters, make_executor, submit
from ditkit.study.runner import cells_to_run
from ditkit.study.status import read_status

SPEC = {"study": {"data": "mnist"}, "budget": {"steps": 5},
        "sizes": {"T": {"hidden_size": 32, "depth": 1, "num_heads": 2}},
        "grid": [{"sizes": ["T"], "patch_sizes": [8, 4]}]}


class FakeJob:
    def __init__(self, job_id):
        self.job_id = job_id


class FakeExecutor:
    def __init__(self):
        self.parameters, self.calls = {}, []

    def update_parameters(self, **kwargs):
        self.parameters.update(kwargs)

    def map_array(self, fn, *iterables):
        self.calls.append((fn, [list(it) for it in iterables]))
        return [FakeJob(f"4242_{i}") for i in range(len(iterables[0]))]


def test_executor_parameters_and_commands():
    options = SlurmOptions(partition="gpu", time_min=90, gpus_per_cell=4, cpus_per_cell=16, mem_gb=64,
                           array_parallelism=8, account="lab", extra={"constraint": "a100"})
    params = executor_parameters(options, "ditkit-study-x")
    assert params == {"name": "ditkit-study-x", "timeout_min": 90, "cpus_per_task": 16, "nodes": 1,
                      "tasks_per_node": 1, "slurm_array_parallelism": 8, "gpus_per_node": 4,
                      "slurm_partition": "gpu", "slurm_account": "lab", "mem_gb": 64, "slurm_constraint": "a100"}
    multi = cell_command("/s/cells/a", options)
    assert multi[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc_per_node=4" in multi
    assert multi[-3:] == ["-m", "ditkit.study.worker", "/s/cells/a"]
    single = cell_command("/s/cells/a", SlurmOptions(gpus_per_cell=1, cpus_per_cell=6))
    assert single == [sys.executable, "-m", "ditkit.study.worker", "/s/cells/a", "--threads", "6"]
    with pytest.raises(DitkitError, match="positive"):
        SlurmOptions(time_min=0)


def test_run_study_submits_one_array_task_per_unfinished_cell(tmp_path):
    spec = parse_spec(SPEC)
    out = tmp_path / "study"
    executor = FakeExecutor()
    import ditkit.study.cluster as cluster

    original = cluster.make_executor
    cluster.make_executor = lambda folder: executor
    try:
        run_study(spec, str(out), cluster=SlurmOptions(partition="cpu"), log=lambda line: None)
    finally:
        cluster.make_executor = original
    (fn, (commands, folders)), = executor.calls
    assert fn is cluster.run_cell_command and len(commands) == 2
    assert sorted(folders) == sorted(str(out / "cells" / c.name) for c in spec.cells)
    assert executor.parameters["slurm_partition"] == "cpu"
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())["jobs"]
    assert sorted(jobs.values()) == ["4242_0", "4242_1"]
    assert all(read_status(f)["state"] == "submitted" for f in folders)
    assert cells_to_run(spec, str(out)) == []  # a re-run does not submit them twice
    assert len(cells_to_run(spec, str(out), retry_failed=True)) == 2


def test_submit_without_cells_and_missing_submitit(tmp_path, monkeypatch):
    assert submit([], SlurmOptions(), str(tmp_path), executor=FakeExecutor()) == []
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed
    with pytest.raises(DitkitError, match=r"pip install 'ditkit\[cluster\]'"):
        make_executor(str(tmp_path))
