"""Slurm job arrays through ``submitit`` (``pip install 'ditkit[cluster]'``): one array task per cell.

A task runs ``python -m ditkit.study.worker CELL_DIR`` on its node, under ``torchrun --nproc_per_node=G`` when
the cell gets several GPUs. ``ditkit study run`` submits and returns; run it again later to submit what is
still unfinished (finished cells are skipped, interrupted ones resume), and ``ditkit study report`` any time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass

from ..errors import DitkitError
from ..fileio import atomic_write_json
from .status import LOG_FILE, write_status


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 240          # per cell
    gpus_per_cell: int = 0       # > 1: the cell trains under torchrun with this many processes
    cpus_per_cell: int = 8
    mem_gb: int | None = None
    array_parallelism: int = 64  # array tasks running at once
    account: str | None = None
    extra: dict | None = None    # more slurm_* parameters for submitit, e.g. {"constraint": "a100"}

    def __post_init__(self):
        if self.time_min < 1 or self.cpus_per_cell < 1 or self.gpus_per_cell < 0 or self.array_parallelism < 1:
            raise DitkitError("Slurm options: time, CPUs and array parallelism must be positive, GPUs ≥ 0")


def cell_command(cell_folder: str, options: SlurmOptions) -> list[str]:
    """The command an array task runs for one cell."""
    worker = ["-m", "ditkit.study.worker", cell_folder]
    if options.gpus_per_cell > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={options.gpus_per_cell}", *worker]
    return [sys.executable, *worker, "--threads", str(options.cpus_per_cell)]


def executor_parameters(options: SlurmOptions, name: str) -> dict:
    """The ``AutoExecutor.update_parameters`` arguments for the array."""
    params = {"name": name, "timeout_min": options.time_min, "cpus_per_task": options.cpus_per_cell,
              "nodes": 1, "tasks_per_node": 1, "slurm_array_parallelism": options.array_parallelism}
    if options.gpus_per_cell:
        params["gpus_per_node"] = options.gpus_per_cell
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.account:
        params["slurm_account"] = options.account
    if options.mem_gb:
        params["mem_gb"] = options.mem_gb
    for key, value in (options.extra or {}).items():
        params[key if key.startswith("slurm_") else f"slurm_{key}"] = value
    return params


def run_cell_command(command: list[str], cell_folder: str) -> int:
    """What an array task executes (picklable, top-level): the worker, its output appended to the cell's log."""
    with open(os.path.join(cell_folder, LOG_FILE), "a") as log:
        return subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)


def make_executor(folder: str):
    try:
        import submitit
    except ImportError:
        raise DitkitError("--cluster slurm needs the submitit package: pip install 'ditkit[cluster]'") from None
    return submitit.AutoExecutor(folder=folder)


def submit(cell_folders: list[str], options: SlurmOptions, out: str, *, executor=None, log=print) -> list[str]:
    """Submit one Slurm array (a task per cell); returns the job ids and records them in OUT/slurm/jobs.json."""
    if not cell_folders:
        return []
    slurm_dir = os.path.join(out, "slurm")
    executor = executor if executor is not None else make_executor(slurm_dir)
    executor.update_parameters(**executor_parameters(options, f"ditkit-study-{os.path.basename(out)}"))
    commands = [cell_command(folder, options) for folder in cell_folders]
    jobs = executor.map_array(run_cell_command, commands, cell_folders)
    ids = [str(job.job_id) for job in jobs]
    for folder, job_id in zip(cell_folders, ids):  # a re-run skips submitted cells (see cells_to_run)
        write_status(folder, state="submitted", job_id=job_id)
    atomic_write_json(os.path.join(slurm_dir, "jobs.json"),
                      {"options": asdict(options), "jobs": dict(zip([os.path.basename(f) for f in cell_folders], ids))})
    log(f"submitted {len(ids)} cells as a Slurm array ({ids[0].split('_')[0] if ids else '-'}); "
        "run 'ditkit study run' again later to pick up unfinished cells, 'ditkit study report' any time")
    return ids
