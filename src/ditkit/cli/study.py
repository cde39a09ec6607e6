"""A study is a TOML file: dataset, grid (sizes × patch sizes × blocks × any training option), budget per cell,
FID schedule, seeds. 'plan' checks it and lists the cells, 'run' trains every cell (finished ones are skipped,
interrupted ones resume), 'report' writes the table and plots."""

from __future__ import annotations

import os
import shlex


HELP = "run the paper's scaling / block-design study from a TOML file, and report it"
def add_parser(subparsers) -> None:
    p = subparsers.add_parser("study", help=HELP, description=__doc__)
    sub = p.add_subparsers(dest="study_command", metavar="ACTION", required=True,
                           help="plan (check a study file), run (train its cells), report (table and plots)")
    _action(sub, "plan", run_plan, "check a study file and list its cells with their Gflops and budget",
            "Validate a study file and print its cells; nothing is trained.")
    r = _action(sub, "run", run_run, "train every unfinished cell of a study",
                "Train every cell of SPEC through the training engine, each in OUT/cells/NAME. Finished cells are "
                "skipped, interrupted ones resume from their last checkpoint, failed or diverged ones are recorded "
                "and the study goes on.")
    r.add_argument("--out", default=None, help="study folder (default: runs/study-NAME)")
    r.add_argument("--jobs", type=int, default=1, help="cells trained at once, one process each (default 1)")
    r.add_argument("--threads", type=int, default=None, help="torch threads per cell (default: CPU cores // jobs)")
    r.add_argument("--retry-failed", action="store_true", help="also re-run failed, diverged and submitted cells")
    r.add_argument("--cluster", choices=("slurm",), default=None,
                   help="submit the cells as a Slurm job array through submitit instead of running them here")
    g = r.add_argument_group("Slurm (with --cluster slurm)")
    g.add_argument("--partition", default=None, help="Slurm partition")
    g.add_argument("--account", default=None, help="Slurm account")
    g.add_argument("--time-min", type=int, default=240, help="time limit per cell in minutes (default 240)")
    g.add_argument("--gpus-per-cell", type=int, default=0, help="GPUs per cell; > 1 trains it under torchrun")
    g.add_argument("--cpus-per-cell", type=int, default=8, help="CPU cores per cell (default 8)")
    g.add_argument("--mem-gb", type=int, default=None, help="memory per cell in GB")
    g.add_argument("--array-parallelism", type=int, default=64, help="array tasks running at once (default 64)")
    rep = _action(sub, "report", run_report, "write a study's table (CSV, Markdown) and plots",
                  "Collect every cell of a study folder: Gflops, parameters, training compute (Gflops × 3 × images "
                  "seen), FID at each evaluation, final FID and status; write results.csv, results.md and the plots.",
                  positional=("dir", "the study folder ('ditkit study run --out')"))
    rep.add_argument("--out", default=None, help="report folder (default: DIR/report)")


def _action(sub, name, func, help_text, description, positional=("spec", "the study file (TOML)")):
    """One ``ditkit study ACTION`` with its positional argument."""
    parser = sub.add_parser(name, help=help_text, description=description)
    parser.add_argument(positional[0], help=positional[1])
    parser.set_defaults(func=func)
    return parser


def run_plan(args) -> int:
    from ..study import load_spec

    spec = load_spec(args.spec)
    print(f"study {spec.name}: {len(spec.cells)} cells on {spec.data} at {spec.image_size} px")
    for cell in spec.cells:
        print(f"  {cell.name:<40} {cell.gflops:9.4f} Gflops {cell.params:>12,} params {cell.max_steps:>7} steps")
    return 0


def run_run(args) -> int:
    from ..study import SlurmOptions, load_spec, run_study

    spec = load_spec(args.spec)
    cluster = None
    if args.cluster == "slurm":
        cluster = SlurmOptions(partition=args.partition, time_min=args.time_min, gpus_per_cell=args.gpus_per_cell,
                               cpus_per_cell=args.cpus_per_cell, mem_gb=args.mem_gb,
                               array_parallelism=args.array_parallelism, account=args.account)
    out = args.out or os.path.join("runs", f"study-{spec.name}")
    states = run_study(spec, out, jobs=args.jobs, threads=args.threads, retry_failed=args.retry_failed,
                       cluster=cluster, log=lambda line: print(line, flush=True))
    counts = {s: list(states.values()).count(s) for s in dict.fromkeys(states.values())}
    print(f"study {spec.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f"; report: ditkit study report {shlex.quote(out)}")
    return 0


def run_report(args) -> int:
    from ..study import write_report

    result = write_report(args.dir, args.out)
    print(f"{result['finished']}/{result['cells']} cells finished; report in {result['dir']}: results.csv, "
          f"results.md, {', '.join(result['plots']) or 'no plots yet'}")
    if result["spearman"]:
        rho, p, n = result["spearman"]
        print(f"Spearman(Gflops, final FID) = {rho:.3f} (p = {p:.2g}, {n} cells)")
    return 0
