"""``ditkit eval``: FID, sFID, Inception Score, precision/recall and class accuracy of samples."""

from __future__ import annotations

import sys
import warnings


DESCRIPTION = (
    "Score samples against a reference. Inputs: a folder of images, an ADM-format .npz (arr_0 uint8 NxHxWx3, "
    "optional labels), or a bundled dataset (mnist, shapes, mnist:test). Every report names the feature extractor "
    "behind its numbers; numbers from different extractors are not comparable."
)


def add_parser(subparsers) -> None:
    help_line = "score samples: FID, sFID, IS, precision/recall, class accuracy"
    p = subparsers.add_parser("eval", help=help_line, description=DESCRIPTION)
    p.add_argument("--samples", required=True, help="folder, .npz, or bundled dataset name[:split]")
    p.add_argument("--reference", required=True, help="folder, .npz, or mnist / shapes (train split; "
                                                       "name:test / name:all for others)")
    p.add_argument("--extractor", default="auto",
                   help="auto (the bundled classifier for mnist/shapes references, else Inception), inception, "
                        "or classifier:NAME (mnist, shapes)")
    p.add_argument("--inception-weights", metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth (default: the cache $DITKIT_CACHE or "
                        "~/.cache/ditkit, downloaded there when online)")
    p.add_argument("--out", metavar="JSON", help="also write the results here as JSON")
    p.add_argument("--batch-size", type=int, default=64, help="images per feature-extractor forward (default 64)")
    p.add_argument("--max-pr-samples", type=int, default=10_000,
                   help="images per side used for precision/recall (ADM: 10,000)")
    p.add_argument("--no-cache", action="store_true", help="recompute reference statistics")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import evaluate, format_report
    from ..fileio import atomic_write_json, check_output_file

    if args.out:
        check_output_file(args.out)  # a folder, a missing or read-only place: one line now, not after the scoring
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # evaluate() returns its warnings; printed below as single lines
        result = evaluate(args.samples, args.reference, extractor=args.extractor,
                          inception_weights=args.inception_weights, batch_size=args.batch_size,
                          max_pr_samples=args.max_pr_samples, use_cache=not args.no_cache,
                          progress=not args.no_progress)
    for note in result["warnings"]:
        print(f"ditkit eval: warning: {note}", file=sys.stderr)
    print(format_report(result))
    if args.out:
        result["arguments"] = {k: v for k, v in vars(args).items() if k != "func"}
        atomic_write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0
