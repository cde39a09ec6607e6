"""``ditkit uni MODE``: UniDiffuser sampling in any of its seven modes (thin over ditkit.pipelines.unidiffuser)."""

from __future__ import annotations

from ..diffusion.unidiffuser import MODES
from ..errors import DitkitError

_ABOUT = {"t2i": "text → image (--prompt)", "i2t": "image → caption (--image)", "joint": "image-caption pairs (-n)",
          "i": "images alone (-n)", "t": "captions alone (-n)", "i2t2i": "image variation: image → caption → image "
          "(--image)", "t2i2t": "text variation: text → image → caption (--prompt)"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "uni", help="UniDiffuser: text→image, image→text, joint pairs, variations",
        description="Sample a UniDiffuser model in one of its modes: " + "; ".join(f"{m}: {a}" for m, a in
                                                                                   _ABOUT.items()) + ".")
    p.add_argument("mode", choices=MODES, help="what to generate: " + ", ".join(MODES))
    p.add_argument("--prompt", action="append", metavar="TEXT", help="a prompt (t2i, t2i2t); repeat for several")
    p.add_argument("--image", action="append", metavar="PATH", help="an input image (i2t, i2t2i); repeat for several")
    p.add_argument("-n", "--num-samples", type=int, help="samples per prompt/image (default 1), or in all for "
                                                         "joint, i and t (default 4)")
    p.add_argument("--checkpoint", metavar="PATH", help="a ditkit UniDiffuser checkpoint folder")
    p.add_argument("--uvit", metavar="PATH", help="the official uvit_v1.pth (with --caption-decoder), instead of "
                                                  "--checkpoint")
    p.add_argument("--caption-decoder", metavar="PATH", help="the official caption_decoder.pth (with --uvit)")
    p.add_argument("--steps", type=int, default=50, help="DPM-Solver steps = network evaluations (default 50, as "
                                                         "the official sampler)")
    p.add_argument("--scale", type=float, default=7.0, help="guidance scale (default 7, as the official sampler)")
    p.add_argument("--seed", type=int, default=0, help="same seed and inputs → same outputs")
    p.add_argument("--beam-size", type=int, default=5, help="caption beam search width (default 5)")
    p.add_argument("--out", default="ditkit-uni", help="output folder, replaced whole (default ./ditkit-uni)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 … (default cpu)")
    p.set_defaults(func=run)


def _load(args):
    from ..pipelines.unidiffuser import UniDiffuser

    if args.uvit or args.caption_decoder:
        if not (args.uvit and args.caption_decoder) or args.checkpoint:
            raise DitkitError("the official model needs both --uvit and --caption-decoder (and no --checkpoint).")
        return UniDiffuser.from_official(args.uvit, args.caption_decoder, device=args.device)
    if not args.checkpoint:
        raise DitkitError("no UniDiffuser model given: pass --checkpoint FOLDER (or --uvit and --caption-decoder).")
    return UniDiffuser.load(args.checkpoint, device=args.device)


def run(args) -> int:
    from ..pipelines.uni_folder import read_images, write_uni_folder

    if args.steps < 1 or (args.num_samples is not None and args.num_samples < 1) or args.beam_size < 1:
        raise DitkitError("--steps, --num-samples and --beam-size must be at least 1.")
    notes: list[str] = []
    images = read_images(args.image, notes) if args.image else None
    model = _load(args)
    n = args.num_samples or (4 if args.mode in ("joint", "i", "t") else None)
    out = model.generate(args.mode, n=n, prompts=args.prompt, images=images, steps=args.steps, scale=args.scale,
                         seed=args.seed, beam_size=args.beam_size)
    out.notes[:0] = notes
    settings = {"checkpoint": args.checkpoint, "uvit": args.uvit, "caption_decoder": args.caption_decoder,
                "prompts": args.prompt, "images": args.image, "num_samples": n, "steps": args.steps,
                "scale": args.scale, "seed": args.seed, "beam_size": args.beam_size}
    for note in out.notes:
        print(f"note: {note}")
    for caption in out.captions or []:
        print(caption)
    for path in write_uni_folder(out, args.out, settings):
        print(f"wrote {path}")
    return 0
