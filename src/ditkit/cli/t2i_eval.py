"""``ditkit t2i-eval``: score a text-to-image checkpoint on the captioned shapes (thin over
``ditkit.evaluation.text_to_image``)."""

from __future__ import annotations

import json
import math
import sys

from ..errors import DitkitError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "t2i-eval", help="text-to-image on the captioned shapes: attribute accuracy, seen and held-out combinations",
        description="Sample a text-to-image checkpoint once per prompt on captions of the test split (colour–shape "
                    "combinations seen in training) and of the held-out split (combinations never trained on); the "
                    "bundled attribute classifier reads each image back. Reports accuracy per attribute and "
                    "all-correct, seen and held-out separately.")
    p.add_argument("--checkpoint", default="shapes-t2i", metavar="PATH",
                   help="a text-to-image checkpoint folder or bundled name (default shapes-t2i)")
    p.add_argument("--num-seen", type=int, default=1000, help="test-split prompts (default 1000)")
    p.add_argument("--num-held-out", type=int, default=500, help="held-out-split prompts (default 500)")
    p.add_argument("--cfg-scale", "--scale", dest="cfg_scale", type=float, default=4.0, help="classifier-free guidance scale (default 4)")
    p.add_argument("--sampler", default="dpm++", help="a sampler from the registry (default dpm++)")
    p.add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    p.add_argument("--seed", type=int, default=0, help="same seed → same images and scores")
    p.add_argument("--batch-size", type=int, default=64, help="images per generate call (default 64)")
    p.add_argument("--out", metavar="JSON", help="also write the report here (a file)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation.text_to_image import evaluate_checkpoint
    from ..fileio import atomic_write_json, check_output_file

    if min(args.num_seen, args.num_held_out) < 0 or args.num_seen + args.num_held_out < 1:
        raise DitkitError("--num-seen and --num-held-out must be non-negative and not both 0.")
    if min(args.steps, args.batch_size) < 1:
        raise DitkitError("--steps and --batch-size must be at least 1.")
    if not math.isfinite(args.cfg_scale):
        raise DitkitError(f"--cfg-scale must be a finite number, got {args.cfg_scale}")
    if args.out:
        check_output_file(args.out)  # before the sampling, not after it
    report = evaluate_checkpoint(args.checkpoint, num_seen=args.num_seen, num_held_out=args.num_held_out,
                                 cfg_scale=args.cfg_scale, sampler=args.sampler, steps=args.steps, seed=args.seed,
                                 batch_size=args.batch_size, device=args.device, progress=not args.no_progress)
    for part in ("seen", "held_out"):
        scores = report[part]
        if scores.get("count_prompts"):
            attrs = ", ".join(f"{k} {v:.3f}" for k, v in scores.items()
                              if k not in ("count_prompts", "all_correct") and isinstance(v, float))
            print(f"{part} ({scores['count_prompts']} prompts): all-correct {scores['all_correct']:.3f}; {attrs}")
    if args.out:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(json.dumps({k: report[k] for k in ("seen", "held_out")}, indent=1))
    return 0
