"""``ditkit uni-eval``: score a UniDiffuser checkpoint of the captioned shapes in t2i, i2t and joint modes
(thin over ``ditkit.evaluation.unidiffuser_eval``)."""

from __future__ import annotations

import json
import sys

from ..errors import DitkitError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "uni-eval", help="UniDiffuser on the captioned shapes: t2i / i2t attribute accuracy, joint agreement",
        description="Score a UniDiffuser checkpoint trained on the captioned shapes. t2i: the attribute "
                    "classifier reads images generated from test captions; i2t: generated captions of test images "
                    "are parsed and compared with the true attributes; joint: the classifier's reading of each "
                    "generated image against its generated caption.")
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="a ditkit UniDiffuser checkpoint folder")
    p.add_argument("--modes", default="t2i,i2t,joint", help="comma-separated, from t2i, i2t, joint (default all)")
    p.add_argument("-n", "--num-samples", type=int, default=500, help="samples per mode (default 500)")
    p.add_argument("--steps", type=int, default=50, help="DPM-Solver steps (default 50)")
    p.add_argument("--scale", type=float, default=7.0, help="guidance scale (default 7)")
    p.add_argument("--seed", type=int, default=0, help="same seed → same samples and scores")
    p.add_argument("--batch-size", type=int, default=50, help="samples per generate call (default 50)")
    p.add_argument("--beam-size", type=int, default=5, help="caption beam search width (default 5)")
    p.add_argument("--classifier", metavar="PATH", help="an attribute classifier .safetensors (default: bundled)")
    p.add_argument("--out", metavar="JSON", help="also write the scores here")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation.attributes import load_attribute_classifier
    from ..evaluation.unidiffuser_eval import evaluate_unidiffuser
    from ..fileio import atomic_write_json
    from ..pipelines.unidiffuser import UniDiffuser

    if min(args.num_samples, args.steps, args.batch_size, args.beam_size) < 1:
        raise DitkitError("--num-samples, --steps, --batch-size and --beam-size must be at least 1.")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    model = UniDiffuser.load(args.checkpoint, device=args.device)
    classifier = load_attribute_classifier(args.classifier, device=args.device) if set(modes) - {"i2t"} else None
    scores = evaluate_unidiffuser(model, modes, args.num_samples, classifier=classifier, steps=args.steps,
                                  scale=args.scale, seed=args.seed, batch_size=args.batch_size,
                                  beam_size=args.beam_size)
    record = {"checkpoint": args.checkpoint, "settings": {k: getattr(args, k) for k in (
        "modes", "num_samples", "steps", "scale", "seed", "batch_size", "beam_size", "classifier")}, "scores": scores}
    for mode, score in scores.items():
        overall = score["all"]
        main = "agreement" if mode == "joint" else "min_attribute"
        parts = [f"{k} {overall[k]:.3f}" for k in (main, "all_correct", "mean_attribute", "parsed")
                 if isinstance(overall.get(k), float)]
        print(f"{mode}: " + ", ".join(parts))
    if args.out:
        atomic_write_json(args.out, record)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(json.dumps(record["scores"], indent=2))
    return 0
