"""Draw samples from a DiT checkpoint; with no flags, one sample per class of the bundled default model, as a
grid. Works under torchrun (ranks share the samples); re-running the same command resumes an interrupted run."""

from __future__ import annotations

import argparse
import math
import sys
import warnings

from ..diffusion import DEFAULT_SAMPLERS
from ..pipelines import DEFAULT_VAE, SAMPLERS, SampleSettings, sample_to_folder
from ..pipelines.text import read_prompts_file


def _class_list(text: str) -> tuple[str, ...]:
    """Comma-separated class numbers or names; names are checked against the checkpoint once it is loaded."""
    classes = tuple(part.strip() for part in text.split(",") if part.strip())
    if not classes:
        raise argparse.ArgumentTypeError("expected at least one class number or name")
    return classes


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _sampler_help() -> str:
    about = "; ".join(f"{name} ({spec.about})" for name, spec in SAMPLERS.items())
    return (f"{about}; default: the one the checkpoint records, else {DEFAULT_SAMPLERS['ddpm']} for DDPM models and "
            f"{DEFAULT_SAMPLERS['flow']} for flow models")


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
    p.add_argument("--cfg-scale", "--scale", dest="cfg_scale", type=finite_float, help="classifier-free guidance scale (1 = none; the paper uses "
                                                         "1.5 for FID, 4 for visuals; default: the checkpoint's "
                                                         "recorded scale, else 1)")
    p.add_argument("--guided-channels", type=int, help="guide only the first K channels (3 reproduces the "
                                                       "official code; default: all, the standard form)")
    p.add_argument("--sampler", choices=list(SAMPLERS), help=_sampler_help())
    defaults = ", ".join(f"{name} {spec.default_steps}" + (f" (flow {spec.flow_steps})" if spec.flow_steps else "")
                         for name, spec in SAMPLERS.items())
    p.add_argument("--steps", type=int, help=f"sampling steps (default: the checkpoint's recorded steps, else {defaults})")
    p.add_argument("--eta", type=finite_float, help="DDIM's noise: 0 deterministic (default), 1 ancestral "
                                                    "(ddim only)")
    p.add_argument("--seed", type=int, default=0, help="same seed → same images (per sample index)")
    p.add_argument("--batch-size", type=int, default=32, help="most samples per forward pass (per process); "
                                                              "a smaller request runs at its own size")
    p.add_argument("--vae", metavar="ID|PATH|none", help=f"decoder: hub id or local AutoencoderKL folder, or 'none' to save raw latents "
                                 f"(default: the checkpoint's codec; {DEFAULT_VAE} for official checkpoints)")
    p.add_argument("--num-heads", type=int, help="attention heads, for official checkpoints of no paper size "
                                                 "(the weights do not store it)")
    p.add_argument("--out", default="ditkit-samples", help="output folder (default: ./ditkit-samples)")
    p.add_argument("--npz", action="store_true", help="also write samples.npz in the ADM evaluation format")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="the network's arithmetic: fp32 (default; the official code's), bf16 autocast (about twice as "
                        "fast where the CPU or GPU does bf16 natively; samples differ slightly), or auto (bf16 "
                        "where native, else fp32)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    p.set_defaults(func=run)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"ditkit sample: warning: {message}", file=sys.stderr)


def run(args) -> int:
    prompts = list(args.prompt or []) + (read_prompts_file(args.prompts_file) if args.prompts_file else [])
    settings = SampleSettings(
        prompts=tuple(prompts) if prompts else None, negative_prompt=args.negative_prompt,
        checkpoint=args.checkpoint, classes=args.classes, num_samples=args.num_samples, sampler=args.sampler,
        steps=args.steps, cfg_scale=args.cfg_scale, guided_channels=args.guided_channels, seed=args.seed,
        vae=args.vae, num_heads=args.num_heads, eta=args.eta, precision=args.precision)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        summary = sample_to_folder(settings, args.out, batch_size=args.batch_size, npz=args.npz,
                                   device=args.device)
    if summary["world_size"] > 1:
        print(f"rank {summary['rank']} of {summary['world_size']}: drew {summary['generated']} samples")
    if summary["rank"] == 0:
        resumed = f" ({summary['skipped']} already there)" if summary["skipped"] else ""
        print(f"{summary['num_samples']} samples in {summary['out']}{resumed}")
        for path in summary["written"]:
            print(f"wrote {path}")
    return 0
