"""The paper's scaling and design-space study as one command.

    from ditkit.study import load_spec, run_study, write_report
    spec = load_spec("studies/miniature.toml")        # validated before anything runs
    run_study(spec, "runs/miniature", jobs=2)          # finished cells skipped, interrupted ones resumed
    write_report("runs/miniature")                     # results.csv / results.md / plots

CLI: ``ditkit study plan|run|report``. Each cell trains through ``ditkit.training.train`` in its own run folder.
"""

from .cluster import SlurmOptions
from .report import collect, spearman, write_report
from .runner import run_study
from .spec import Cell, StudySpec, load_spec, parse_spec

__all__ = ["Cell", "SlurmOptions", "StudySpec", "collect", "load_spec", "parse_spec", "run_study", "spearman",
           "write_report"]
