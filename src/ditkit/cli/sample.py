"""Draw samples from a DiT checkpoint; with no flags, one sample per class of the bundled default model, as a
grid. Works under torchrun (ranks share the samples); re-running the same command resumes an interrupted run."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..pipelines import DEFAULT_VAE, SampleSettings, sample_to_folder
from ..pipelines.text import read_prompts_file
from .sampling import COMMON, add_sampling_flags, check_counts, sampling_values

# every sampling knob applies to a DiT
KNOBS = (*COMMON[:3], "guided_channels", "eta", *COMMON[3:])


def _class_list(text: str) -> tuple[str, ...]:
    """Comma-separated class numbers or names; names are checked against the checkpoint once it is loaded."""
    classes = tuple(part.strip() for part in text.split(",") if part.strip())
    if not classes:
        raise argparse.ArgumentTypeError("expected at least one class number or name")
    return classes


HELP = "draw samples from a checkpoint (PNG per sample, grid, optional ADM .npz)"
def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help=HELP, description=__doc__)
    p.add_argument("--checkpoint", metavar="PATH", help="ditkit checkpoint folder, official DiT .pt file, an "
                                                       "official name like DiT-XL/2-256 (downloaded once), or a "
                                                       "bundled model's name (mnist-dit, shapes-dit, shapes-t2i; "
                                                       "mnist-uni is a UniDiffuser: ditkit uni); "
                                                       "default: mnist-dit, bundled with ditkit")
    p.add_argument("--classes", type=_class_list, metavar="3,7|cat,dog",
                   help="comma-separated class numbers or the checkpoint's class names, one sample each (with "
                        "--num-samples: cycled through); default: every class once")
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="text models: a prompt (repeat for several; \"\" is the unconditional null text); "
                        "with --num-samples: cycled through")
    p.add_argument("--prompts-file", metavar="FILE", help="text models: UTF-8 text file, one prompt per line")
    p.add_argument("--negative-prompt", metavar="TEXT", help="text models: guide away from this text instead "
                                                             "of the null text (with --cfg-scale)")
    p.add_argument("-n", "--num-samples", type=int, help="number of samples; on a class-conditional model "
                                                   "spread evenly over the classes (sample i gets class i mod K)")
    p.add_argument("--vae", metavar="ID|PATH|none", help=f"decoder: hub id or local AutoencoderKL folder, or 'none' to save raw latents "
                                 f"(default: the checkpoint's codec; {DEFAULT_VAE} for official checkpoints)")
    p.add_argument("--num-heads", type=int, help="attention heads, for official checkpoints of no paper size "
                                                 "(the weights do not store it)")
    p.add_argument("--out", default="ditkit-samples", help="output folder (default: ./ditkit-samples)")
    p.add_argument("--npz", action="store_true", help="also write samples.npz in the ADM evaluation format")
    add_sampling_flags(p, KNOBS)
    p.set_defaults(func=run)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"ditkit sample: warning: {message}", file=sys.stderr)


def run(args) -> int:
    check_counts(num_samples=args.num_samples, steps=args.steps, batch_size=args.batch_size)
    prompts = list(args.prompt or []) + (read_prompts_file(args.prompts_file) if args.prompts_file else [])
    knobs = sampling_values(args, KNOBS)
    device, progress, batch_size = knobs.pop("device"), knobs.pop("progress"), knobs.pop("batch_size")
    settings = SampleSettings(
        prompts=tuple(prompts) if prompts else None, negative_prompt=args.negative_prompt,
        checkpoint=args.checkpoint, classes=args.classes, num_samples=args.num_samples, vae=args.vae,
        num_heads=args.num_heads, **knobs)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        summary = sample_to_folder(settings, args.out, batch_size=batch_size, npz=args.npz, device=device,
                                   progress=progress)
    if summary["world_size"] > 1:
        print(f"rank {summary['rank']} of {summary['world_size']}: drew {summary['generated']} samples")
    if summary["rank"] == 0:
        resumed = f" ({summary['skipped']} already there)" if summary["skipped"] else ""
        print(f"{summary['num_samples']} samples in {summary['out']}{resumed}")
        for path in summary["written"]:
            print(f"wrote {path}")
    return 0
