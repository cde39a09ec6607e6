"""The paper's scaling and design-space study as one command.

    from ditkit.study import load_spec, run_study, write_report
    spec = load_spec("studies/miniature.toml")        # validated before anything runs
    run_study(spec, "runs/miniature", jobs=2)          # finished cells skipped, interrupted ones resumed
    write_report("runs/miniature")                     # results.csv / results.md / plots

CLI: ``ditkit study plan|run|report``. Each cell trains through ``ditkit.training.train`` in its own run folder.

- ``spec``: a TOML study: grid → validated cells (``Cell``) with Gflops
- ``runner``: ``run_study``: skip finished cells, resume interrupted ones, ``--jobs N`` worker processes
- ``worker``: one cell = one ``training.train`` run + FID hook
- ``status``: each cell's ``status.json``, written atomically
- ``cluster``: Slurm arrays via submitit
- ``report``, ``plots``: CSV, Markdown, Spearman, block ranking; the paper's PNGs
"""

from .cluster import SlurmOptions
from .report import collect, spearman, write_report
from .runner import run_study
from .spec import Cell, StudySpec, load_spec, parse_spec

__all__ = ["Cell", "SlurmOptions", "StudySpec", "collect", "load_spec", "parse_spec", "run_study", "spearman",
           "write_report"]
