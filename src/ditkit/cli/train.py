"""Train a DiT. One process: 'ditkit train ...'; several: 'torchrun --nproc_per_node=N -m ditkit train ...' (DDP;
gloo on CPU, NCCL on GPU). Writes checkpoints, metrics.jsonl, sample grids and the resolved config to --out."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from ..models.registry import ALL_BLOCKS, MLPS, NORMS


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return value in ("on", "true", "1", "yes")


_OVERRIDES = {  # small-model flags → DiTConfig fields, so a tiny DiT needs no config file
    "depth": (int, "override the number of transformer blocks"),
    "hidden_size": (int, "override the transformer width"),
    "num_heads": (int, "override the number of attention heads"),
    "patch_size": (int, "override the patch size"),
    "mlp_ratio": (float, "override the MLP width ratio"),
    "block": (str, "conditioning block design (default adaln-zero; text runs: cross-text, or joint-text for "
                   "SD3-style joint attention)"),
    "class_dropout_prob": (float, "label dropout for classifier-free guidance (default 0.1)"),
    "text_pooled": (_on_off, "text models: add the pooled text vector to the timestep embedding, so adaLN sees "
                             "the prompt too (on/off; default off)"),
    "mlp": (str, "MLP of every block: gelu (the paper's) or swiglu (about the same parameters; default gelu)"),
    "norm": (str, "norms of the blocks and final layer: layernorm or rmsnorm (default layernorm)"),
    "qk_norm": (_on_off, "RMSNorm over each head's queries and keys (on/off; default off)"),
    "rope": (_on_off, "2-D rotary positions on queries and keys, replacing the sin-cos table (on/off; default off)"),
    "long_skips": (_on_off, "U-ViT long skips from the first half of the blocks to the mirrored second half "
                            "(on/off; default off)"),
}
_BLOCKS = ALL_BLOCKS  # every block design, from the torch-free registry
_CHOICES = {"block": ALL_BLOCKS, "mlp": MLPS, "norm": NORMS}
_TYPES = {"int": int, "float": float, "str": str}
_REQUIRED = {"data"}  # the library defaults to mnist; on the command line the data is always named
# A flag's parsed default: "not given", so that --recipe can fill it and an explicit flag overrides the recipe.
# The help text shows the dataclass default itself.
_UNSET = argparse.SUPPRESS


def _add_nested(group, f) -> None:
    """Flags for the sub-fields of a dataclass field (``--diffusion-steps`` → ``diffusion.diffusion_steps``)."""
    defaults = f.default_factory()
    for name, (help_text, choices) in f.metadata["nested"].items():
        default = getattr(defaults, name)
        group.add_argument("--" + name.replace("_", "-"), dest=f"{f.name}__{name}", type=type(default),
                           default=_UNSET, choices=choices, metavar=None if choices else name.split("_")[-1].upper(),
                           help=f"{help_text} (default {default})")


def _add_field(group, f) -> None:
    """One flag for one TrainConfig field: its type, default and help (with the default shown)."""
    meta, default = f.metadata, f.default
    if "nested" in meta:
        return _add_nested(group, f)
    flag = "--" + f.name.replace("_", "-")
    kind = str(f.type).replace(" | None", "")
    common = {"dest": f.name, "help": meta["help"]}
    if kind == "bool" and default is None:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=_UNSET, **common)
    elif kind == "bool" and default:  # on by default: the flag turns it off
        group.add_argument(f"--no-{f.name.replace('_', '-')}", action="store_false", default=_UNSET, **common)
    elif kind == "bool":
        group.add_argument(flag, action="store_true", default=_UNSET, **common)
    else:
        if f.name in _REQUIRED:
            common["required"] = True
        elif default is not None:
            common["help"] += f" (default {default})"
        group.add_argument(flag, type=_TYPES[kind], default=None if f.name in _REQUIRED else _UNSET,
                           choices=meta.get("choices"), metavar=meta.get("metavar"), **common)


HELP = "train a DiT on an image folder or a bundled dataset (torchrun for several processes)"
def add_parser(subparsers) -> None:
    from ..training import TrainConfig

    p = subparsers.add_parser("train", help=HELP, description=__doc__)
    groups = {}
    for f in fields(TrainConfig):
        if f.metadata.get("cli", True) is False:
            continue
        group_name = f.metadata.get("group", "options")
        if group_name not in groups:
            groups[group_name] = p.add_argument_group(group_name)
        _add_field(groups[group_name], f)
        if f.name == "model":  # the shape overrides sit beside --model
            for name, (kind, help_text) in _OVERRIDES.items():
                groups[group_name].add_argument("--" + name.replace("_", "-"), type=kind, help=help_text,
                                                metavar="on|off" if kind is _on_off else None,
                                                choices=_CHOICES.get(name))
    p.set_defaults(func=run)


def config_from_args(args):
    """The TrainConfig the parsed flags describe."""
    from ..training import TrainConfig

    given = vars(args)  # flags not given are absent (_UNSET): the recipe, then the dataclass, decides them
    values = {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}
    for f in fields(TrainConfig):
        if "nested" in f.metadata:
            values[f.name] = {n: given[f"{f.name}__{n}"] for n in f.metadata["nested"] if f"{f.name}__{n}" in given}
    values["model_overrides"] = {k: given[k] for k in _OVERRIDES if given.get(k) is not None}
    return TrainConfig.from_recipe(values.pop("recipe", "dit"), **values)


def run(args) -> int:
    from ..training import train

    config = config_from_args(args)
    summary = train(config, command_line=list(sys.argv))  # --fid-every: the run's own evaluation (trainer.py)
    if summary.get("already_done"):
        print(f"nothing to train: the run is already at step {summary['step']} (--max-steps {config.max_steps}); "
              f"raise --max-steps to train further. Checkpoint: {summary['checkpoint']}")
    elif summary["checkpoint"]:
        print(f"trained to step {summary['step']} (loss {summary['loss']:.4f}); checkpoint: {summary['checkpoint']}")
    return 0
