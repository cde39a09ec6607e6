"""``ditkit uni-eval``: score a UniDiffuser checkpoint in t2i, i2t and joint modes on the data it was trained on
(the captioned shapes or MNIST digits; thin over ``ditkit.evaluation.unidiffuser_eval``)."""

from __future__ import annotations

import json
import os
import sys

from ..errors import DitkitError
from .sampling import add_scoring_parser, check_counts, resolve_device


def add_parser(subparsers) -> None:
    p = add_scoring_parser(
        subparsers, "uni-eval", help="UniDiffuser t2i / i2t accuracy and joint agreement (captioned shapes or MNIST)",
        description="Score a UniDiffuser checkpoint on the test split of the data it was trained on (shapes: "
                    "the attribute classifier and parse_caption; mnist: the bundled MNIST classifier and the digit "
                    "named by the caption). t2i: the classifier reads images generated from test captions; i2t: "
                    "generated captions of test images are read back and compared with the truth; joint: the "
                    "classifier's reading of each generated image against its generated caption.",
        checkpoint=dict(required=True, help="a ditkit UniDiffuser checkpoint folder"))
    p.add_argument("--modes", default="t2i,i2t,joint", help="comma-separated, from t2i, i2t, joint (default all)")
    p.add_argument("-n", "--num-samples", type=int, default=500, help="samples per mode (default 500)")
    p.add_argument("--beam-size", type=int, default=5, help="caption beam search width (default 5)")
    p.add_argument("--data", metavar="shapes|mnist", help="score as a model of this data (default: the data the "
                   "checkpoint records it was trained on; shapes if it records none)")
    p.add_argument("--classifier", metavar="PATH", help="the data's classifier .safetensors (default: bundled)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoints.unidiffuser import read_unidiffuser_config
    from ..evaluation.unidiffuser_eval import checkpoint_data, evaluate_unidiffuser, scoring_for
    from ..fileio import atomic_write_json, check_output_file
    from ..pipelines.unidiffuser import UniDiffuser
    from ..precision import resolve_precision

    check_counts(num_samples=args.num_samples, steps=args.steps, batch_size=args.batch_size,
                 beam_size=args.beam_size)
    resolve_device(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes:
        raise DitkitError("--modes names no mode; give one or more of t2i, i2t, joint, comma-separated.")
    if args.out:
        check_output_file(args.out)  # before the sampling, not after it
    model = UniDiffuser.load(args.checkpoint, device=args.device)
    data = args.data or checkpoint_data(read_unidiffuser_config(args.checkpoint))
    scoring = scoring_for(data)
    classifier = _classifier(scoring, args.classifier, args.device) if set(modes) - {"i2t"} else None
    sampling = model.sampling_settings(args.sampler, args.steps, args.cfg_scale)
    precision = resolve_precision(args.precision, args.device)  # recorded as resolved
    scores = evaluate_unidiffuser(model, modes, args.num_samples, data=scoring.data, classifier=classifier,
                                  seed=args.seed, batch_size=args.batch_size, beam_size=args.beam_size,
                                  precision=precision, progress=args.progress, **sampling)
    given = {k: getattr(args, k) for k in ("modes", "num_samples", "seed", "batch_size", "beam_size", "classifier")}
    given["precision"] = precision
    record = {"checkpoint": args.checkpoint, "data": scoring.data, "settings": {**sampling, **given},
              "scores": scores}
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


def _classifier(scoring, path: str | None, device: str):
    """The data's classifier (bundled, or ``--classifier FILE``); a file that is not one: one line."""
    from safetensors import SafetensorError

    if path is not None and not os.path.isfile(path):
        raise DitkitError(f"--classifier {path}: no such file.")
    if path is not None and not os.path.isfile(os.path.splitext(path)[0] + ".json"):
        raise DitkitError(f"--classifier {path} is not a {scoring.data} classifier: one is a .safetensors file with "
                          f"its .json beside it ({os.path.splitext(path)[0]}.json), as ditkit's classifier training "
                          "writes them.")
    try:
        return scoring.load_classifier(path, device)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DitkitError(f"--classifier {path} is not a {scoring.data} classifier ({reason[:200]}).") from None
