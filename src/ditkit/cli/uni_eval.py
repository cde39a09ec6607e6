"""``ditkit uni-eval``: score a UniDiffuser checkpoint in t2i, i2t and joint modes on the data it was trained on
(the captioned shapes or MNIST digits; thin over ``ditkit.evaluation.unidiffuser_eval``)."""

from __future__ import annotations

import json
import sys

from ..errors import DitkitError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "uni-eval", help="UniDiffuser t2i / i2t accuracy and joint agreement (captioned shapes or MNIST)",
        description="Score a UniDiffuser checkpoint on the test split of the data it was trained on (shapes: "
                    "the attribute classifier and parse_caption; mnist: the bundled MNIST classifier and the digit "
                    "named by the caption). t2i: the classifier reads images generated from test captions; i2t: "
                    "generated captions of test images are read back and compared with the truth; joint: the "
                    "classifier's reading of each generated image against its generated caption.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a ditkit UniDiffuser checkpoint folder")
    p.add_argument("--modes", default="t2i,i2t,joint", help="comma-separated, from t2i, i2t, joint (default all)")
    p.add_argument("-n", "--num-samples", type=int, default=500, help="samples per mode (default 500)")
    p.add_argument("--steps", type=int, default=50, help="DPM-Solver steps (default 50)")
    p.add_argument("--scale", type=float, default=7.0, help="guidance scale (default 7)")
    p.add_argument("--seed", type=int, default=0, help="same seed → same samples and scores")
    p.add_argument("--batch-size", type=int, default=50, help="samples per generate call (default 50)")
    p.add_argument("--beam-size", type=int, default=5, help="caption beam search width (default 5)")
    p.add_argument("--data", metavar="shapes|mnist", help="score as a model of this data (default: the data the "
                   "checkpoint records it was trained on; shapes if it records none)")
    p.add_argument("--classifier", metavar="PATH", help="the data's classifier .safetensors (default: bundled)")
    p.add_argument("--out", metavar="JSON", help="also write the scores here")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoints.unidiffuser import read_unidiffuser_config
    from ..evaluation.unidiffuser_eval import checkpoint_data, evaluate_unidiffuser, scoring_for
    from ..fileio import atomic_write_json
    from ..pipelines.unidiffuser import UniDiffuser

    if min(args.num_samples, args.steps, args.batch_size, args.beam_size) < 1:
        raise DitkitError("--num-samples, --steps, --batch-size and --beam-size must be at least 1.")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    model = UniDiffuser.load(args.checkpoint, device=args.device)
    data = args.data or checkpoint_data(read_unidiffuser_config(args.checkpoint))
    scoring = scoring_for(data)
    classifier = scoring.load_classifier(args.classifier, args.device) if set(modes) - {"i2t"} else None
    scores = evaluate_unidiffuser(model, modes, args.num_samples, data=scoring.data, classifier=classifier,
                                  steps=args.steps, scale=args.scale, seed=args.seed, batch_size=args.batch_size,
                                  beam_size=args.beam_size)
    record = {"checkpoint": args.checkpoint, "data": scoring.data, "settings": {k: getattr(args, k) for k in (
        "modes", "num_samples", "steps", "scale", "seed", "batch_size", "beam_size", "classifier")}, "scores": scores}
    for mode, score in scores.items():
        overall = score["all"]
        parts = [f"{k} {overall[k]:.3f}" for k in scoring.headline[mode] if isinstance(overall.get(k), float)]
        print(f"{mode}: " + ", ".join(parts))
    if args.out:
        atomic_write_json(args.out, record)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(json.dumps(record["scores"], indent=2))
    return 0
