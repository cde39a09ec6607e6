"""``ditkit uni MODE``: UniDiffuser sampling in any of its seven modes (thin over ditkit.pipelines.unidiffuser)."""

from __future__ import annotations

import shlex
from contextlib import contextmanager

from ..diffusion.unidiffuser import MODES, network_evaluations
from ..errors import DitkitError
from .sampling import COMMON, add_sampling_flags, check_counts, resolve_device

# DiTs' --eta and --guided-channels do not apply to a UniDiffuser.
KNOBS = COMMON

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
    p.add_argument("--beam-size", type=int, default=5, help="caption beam search width (default 5)")
    p.add_argument("--out", default="ditkit-uni",
                   help="output folder: new, empty, or an earlier `ditkit uni` output (replaced whole); nothing else "
                        "is replaced (default ./ditkit-uni)")
    add_sampling_flags(p, KNOBS)
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
    import torch

    from ..pipelines.unidiffuser import MODE_INPUTS
    from ..pipelines.uni_folder import check_uni_out, read_image_list, write_uni_folder
    from ..precision import resolve_precision

    check_counts(steps=args.steps, num_samples=args.num_samples, beam_size=args.beam_size,
                 batch_size=args.batch_size)
    resolve_device(args)
    check_uni_out(args.out)  # before any work: a folder that is not an earlier uni output is never replaced
    notes: list[str] = []
    images = read_image_list(args.image, notes) if args.image else None
    model = _load(args)
    if images is not None:  # each centre-cropped and resized to the model's size, so sizes may differ
        images = torch.cat([model.prepare_images(image, notes) for image in images])
    n = args.num_samples or (4 if args.mode in ("joint", "i", "t") else None)
    sampling = model.sampling_settings(args.sampler, args.steps, args.cfg_scale)
    precision = resolve_precision(args.precision, args.device)  # recorded as resolved, as `sample` records it
    given = {"prompts": args.prompt, "images": images}.get(MODE_INPUTS[args.mode])
    samples = (n or 1) * (1 if given is None else len(given))
    with _progress(args, sampling, -(-samples // args.batch_size)) as callback:
        out = model.generate(args.mode, n=n, prompts=args.prompt, images=images, seed=args.seed,
                             beam_size=args.beam_size, callback=callback, precision=precision,
                             batch_size=args.batch_size, **sampling)
    out.notes[:0] = list(dict.fromkeys(notes))
    intermediate = _keep_intermediate(model, out, args.beam_size)
    settings = {"checkpoint": args.checkpoint, "uvit": args.uvit, "caption_decoder": args.caption_decoder,
                "prompts": args.prompt, "images": args.image, "num_samples": n, **sampling,
                "seed": args.seed, "batch_size": args.batch_size, "precision": precision,
                "beam_size": args.beam_size, **intermediate, "command": uni_command(args, n, sampling, precision)}
    for note in out.notes:
        print(f"note: {note}")
    for caption in out.captions or []:
        print(caption)
    for path in write_uni_folder(out, args.out, settings):
        print(f"wrote {path}")
    return 0


def uni_command(args, n: int | None, sampling: dict, precision: str) -> str:
    """A ``ditkit uni`` command that redraws this run: its inputs, and the sampling it resolved
    (``SamplingConfig.command_args``), so it names the recorded defaults a bare command used."""
    from ..pipelines.settings import SamplingConfig

    parts = ["ditkit", "uni", args.mode]
    for flag, values in (("--prompt", args.prompt), ("--image", args.image)):
        for value in values or ():
            parts += [flag, value]
    if n is not None:
        parts += ["--num-samples", str(n)]
    for flag, value in (("--checkpoint", args.checkpoint), ("--uvit", args.uvit),
                        ("--caption-decoder", args.caption_decoder)):
        if value is not None:
            parts += [flag, value]
    parts += SamplingConfig.command_args(sampler=sampling["sampler"], steps=sampling["steps"],
                                         cfg_scale=sampling["scale"], seed=args.seed,
                                         batch_size=args.batch_size, precision=precision)
    return shlex.join([*parts, "--beam-size", str(args.beam_size), "--out", str(args.out)])


@contextmanager
def _progress(args, sampling: dict, passes: int):
    """A callback per network evaluation of the sampler (``passes`` batches of samples), shown as ``sample`` shows
    it (plain lines off a terminal)."""
    from ..progress import progress_bar

    total = network_evaluations(args.mode, sampling["steps"], sampling["sampler"]) * passes
    with progress_bar(total=total, desc=f"uni {args.mode}", unit="step", disable=not args.progress) as bar:
        yield lambda **_: bar.update(1) if bar.n < total else None


def _keep_intermediate(model, out, beam_size: int) -> dict:
    """The two-stage modes' middle result, written beside the final one: i2t2i's captions (captions.txt),
    t2i2t's images (PNGs); run.json names which is which."""
    if out.mode == "i2t2i" and "text" in out.latents and out.captions is None:
        out.captions = model.decode_text(out.latents["text"], beam_size)
        return {"intermediate": "captions.txt: the captions the output images were drawn from"}
    if out.mode == "t2i2t" and "img" in out.latents and out.images is None:
        out.images = model.decode_images(out.latents["img"]).cpu()
        return {"intermediate": "the images (PNGs) the output captions were drawn from"}
    return {}
