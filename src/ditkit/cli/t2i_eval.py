"""``ditkit t2i-eval``: score a text-to-image checkpoint on the captioned shapes (thin over
``ditkit.evaluation.text_to_image``)."""

from __future__ import annotations

import json
import sys

from ..errors import DitkitError
from .sampling import add_scoring_parser, check_counts, sampling_values


def add_parser(subparsers) -> None:
    description = ("Sample a text-to-image checkpoint once per prompt on captions of the test split (colour–shape "
                   "combinations seen in training) and of the held-out split (combinations never trained on); the "
                   "bundled attribute classifier reads each image back. Reports accuracy per attribute and "
                   "all-correct, seen and held-out separately. Sampler, steps and guidance: the checkpoint's record, "
                   "else the scoring protocol's (dpm++, 20 steps, guidance 4: what training's periodic evaluation "
                   "uses).")
    p = add_scoring_parser(subparsers, "t2i-eval", description=description, checkpoint=dict(
        default="shapes-t2i", help="a text-to-image checkpoint folder or bundled name (default shapes-t2i)"),
        help="text-to-image on the captioned shapes: attribute accuracy, seen and held-out combinations")
    p.add_argument("--num-seen", type=int, default=1000, help="test-split prompts (default 1000)")
    p.add_argument("--num-held-out", type=int, default=500, help="held-out-split prompts (default 500)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed import pick_device
    from ..evaluation.text_to_image import evaluate_checkpoint
    from ..fileio import atomic_write_json, check_output_file

    if min(args.num_seen, args.num_held_out) < 0 or args.num_seen + args.num_held_out < 1:
        raise DitkitError("--num-seen and --num-held-out must be non-negative and not both 0.")
    check_counts(steps=args.steps, batch_size=args.batch_size)
    if args.out:
        check_output_file(args.out)  # before the sampling, not after it
    knobs = sampling_values(args)
    knobs["device"] = str(pick_device(knobs["device"]))
    report = evaluate_checkpoint(args.checkpoint, num_seen=args.num_seen, num_held_out=args.num_held_out, **knobs)
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
