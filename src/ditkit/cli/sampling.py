"""The sampling flags of ``sample``, ``uni``, ``t2i-eval`` and ``uni-eval``, built from the one declaration
(``pipelines.settings.SamplingConfig``): one name, one default and one help text per flag everywhere."""

from __future__ import annotations

import argparse
import math

from ..knobs import flag_names

# Every sampling command takes these; guided channels and eta apply to DiTs only (``ditkit sample``).
COMMON = ("sampler", "steps", "cfg_scale", "seed", "batch_size", "precision", "device", "progress")


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def guidance_scale(text: str) -> float:
    """A guidance scale: a finite number >= 0. NaN would make black images and a run.json that is not JSON."""
    try:
        value = finite_float(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (a guidance scale: expected a finite number >= 0)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


_TYPES = {"int": int, "float": finite_float, "str": str}


def add_sampling_flags(parser, names=COMMON, *, title: str = "sampling") -> None:
    """Add the flags of the knobs ``names`` (``SamplingConfig`` field names) to ``parser``, in one group."""
    from ..pipelines.settings import SamplingConfig

    group = parser.add_argument_group(title, "the same flags and defaults in every sampling command")
    for f in SamplingConfig.knobs(names):
        meta, kind = f.metadata, str(f.type).replace(" | None", "")
        common = {"dest": f.name, "help": meta["help"]}
        if kind == "bool":  # on by default: the flag turns it off
            group.add_argument(*flag_names(f), action="store_false", default=f.default, **common)
            continue
        if f.default is not None:
            common["help"] += f" (default {f.default})"
        kind_type = guidance_scale if f.name == "cfg_scale" else _TYPES[kind]
        group.add_argument(*flag_names(f), type=kind_type, default=f.default, choices=meta.get("choices"),
                           metavar=meta.get("metavar"), **common)


def add_scoring_parser(subparsers, name: str, *, help: str, description: str, checkpoint: dict):
    """A scoring command's parser (``t2i-eval``, ``uni-eval``): its ``--checkpoint`` (``checkpoint``: the
    argument's keywords), ``--out JSON`` and the sampling flags; the caller adds what it scores."""
    p = subparsers.add_parser(name, help=help, description=description)
    p.add_argument("--checkpoint", metavar="PATH", **checkpoint)
    p.add_argument("--out", metavar="JSON", help="also write the scores here (a file, written whole or not at all)")
    add_sampling_flags(p)
    return p


def sampling_values(args, names=COMMON) -> dict:
    """The parsed values of the knobs ``names``, by field name."""
    from ..pipelines.settings import SamplingConfig

    return {f.name: getattr(args, f.name) for f in SamplingConfig.knobs(names)}


def resolve_device(args) -> str:
    """``--device`` as given, else cuda when available, else cpu (``distributed.pick_device``), stored back."""
    from ..distributed import pick_device

    args.device = str(pick_device(args.device))
    return args.device


def check_counts(**counts) -> None:
    """Counts given on the command line (None: not given) must be at least 1: one line naming the flags."""
    from ..errors import DitkitError

    bad = [name for name, value in counts.items() if value is not None and value < 1]
    if bad:
        flags = ", ".join("--" + name.replace("_", "-") for name in bad)
        raise DitkitError(f"{flags} must be at least 1.")
