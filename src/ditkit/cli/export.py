"""Write CHECKPOINT (any checkpoint ditkit loads) as a new folder OUT that diffusers loads.

DiTPipeline.from_pretrained(OUT) for latent models (transformer/, scheduler/ with the training betas, vae/),
DiTTransformer2DModel.from_pretrained(OUT, subfolder='transformer') for pixel-space ones. Only adaLN-Zero
DiTs with mlp_ratio 4 and at most 1,000 classes exist in diffusers.
"""

from __future__ import annotations

import argparse
import os
import warnings

from .info import add_checkpoint_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              help="write a checkpoint in another library's layout (diffusers' DiTPipeline)")
    add_checkpoint_arguments(p)
    p.add_argument("out", nargs="?", help="the folder to write (must not exist, or be empty); or --out")
    p.add_argument("--out", dest="out_option", metavar="OUT", help="the same, as the other commands spell it")
    p.add_argument("--format", choices=["diffusers"], default="diffusers", help="the layout to write")
    p.add_argument("--vae", default=None,
                   help="the VAE to ship (ema, mse, a hub id or a local AutoencoderKL folder); default: the one "
                        "the checkpoint names")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoints import load_checkpoint
    from ..errors import DitkitError

    if args.out and args.out_option and args.out != args.out_option:
        raise DitkitError(f"two output folders given ({args.out} and --out {args.out_option}): give one")
    args.out = args.out or args.out_option
    if not args.out:
        raise DitkitError("ditkit export needs the folder to write: ditkit export CHECKPOINT --out OUT")
    from ..fileio import check_replaceable, check_writable
    from ..interop.diffusers import export_diffusers

    check_replaceable(args.out, None, "an empty folder")  # before loading: nothing there is ever replaced
    check_writable(os.path.dirname(os.path.abspath(os.path.expanduser(args.out))))

    with warnings.catch_warnings():  # guesses (a head count) are what `ditkit info` reports; not repeated here
        warnings.simplefilter("ignore")
        loaded = load_checkpoint(args.checkpoint, num_heads=args.num_heads)
    summary = export_diffusers(loaded.model, loaded.config, args.out, vae=args.vae)
    kind = "a DiTPipeline folder" if summary["pipeline"] else "a DiTTransformer2DModel folder"
    print(f"wrote {summary['out']}: {kind} (diffusers)")
    if summary["note"]:
        print(f"note: {summary['note']}")
    print("note: diffusers' DiT embeds timesteps with slightly different frequencies than the paper's code; "
          "ditkit.interop.diffusers.use_dit_timestep_frequencies(pipe) makes its outputs match ditkit's")
    return 0
