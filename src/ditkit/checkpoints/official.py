"""Safe reading of the official DiT files, which are pickles.

They are read with ``torch.load(weights_only=True)``, allowing exactly one extra class,
``argparse.Namespace`` (the ``args`` a ``train.py`` checkpoint carries) — never an arbitrary unpickle.
Official files store no config; ``inference`` reads it off the tensor shapes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..errors import DitkitError
from ..models.dit import DiTConfig
from .format import FORMAT, first_line

# Diffusion settings every official DiT was trained with (create_diffusion's defaults).
OFFICIAL_DIFFUSION = {"diffusion_steps": 1000, "noise_schedule": "linear"}
# The only non-container class an official file may hold.
ALLOWED_GLOBALS = [argparse.Namespace]


def safe_torch_load(path: Path):
    """``torch.load`` that can only build tensors, plain containers and argparse.Namespace."""
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files: KeyError, EOFError, RuntimeError, ...
        if "Unsupported global" in str(exc):
            raise DitkitError(
                f"{path} contains Python objects other than tensors, so it was not unpickled (only official "
                "DiT state dicts and train.py checkpoints are accepted)."
            ) from None
        # torch's own words help only for damaged zip archives; other types (KeyError 101, ...) say nothing
        reason = f" ({first_line(exc).split('. ')[0]})" if type(exc) is RuntimeError else ""
        raise DitkitError(
            f"Could not read {path}: it is not a PyTorch checkpoint, or it is truncated or corrupt{reason}."
        ) from None


def strip_wrapper_prefixes(state_dict: dict) -> dict:
    """DDP ('module.') and torch.compile ('_orig_mod.') prefixes, when every key carries them."""
    for prefix in ("module.", "_orig_mod."):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def train_args(args) -> dict:
    """The ``args`` of a train.py checkpoint (a Namespace, or a dict) as a dict; {} when absent."""
    if args is None:
        return {}
    return dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args) if isinstance(args, dict) else {}


def read_official(path: Path, use_ema: bool, notes: list[str]) -> tuple[dict, str, dict]:
    """(state dict, kind, train args) of an official state dict or train.py checkpoint."""
    obj = safe_torch_load(path)
    args: dict = {}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # train.py: model, ema, opt, args
        kind = "official-train-checkpoint"
        args = train_args(obj.get("args"))
        if use_ema and isinstance(obj.get("ema"), dict):
            state_dict = obj["ema"]
            notes.append("loaded the EMA weights")
        else:
            state_dict = obj["model"]
            notes.append("loaded the raw (non-EMA) weights" + ("" if not use_ema else ": the file has no EMA"))
    else:
        state_dict, kind = obj, "official-state-dict"
    return state_dict, kind, args


def foreign_config(config: DiTConfig, kind: str, args: dict) -> dict:
    """Our config layout for an official file; the codec is known only from train.py's args."""
    codec = None
    vae = args.get("vae")
    if isinstance(vae, str) and vae in ("ema", "mse"):
        codec = {"type": "vae", "source": f"stabilityai/sd-vae-ft-{vae}", "scaling_factor": 0.18215}
    extra: dict[str, Any] = {"source_format": kind}
    if args:
        extra["train_args"] = {k: v for k, v in args.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return {
        "format": FORMAT,
        "ditkit_version": None,  # not written by ditkit
        "model": config.to_dict(),
        "diffusion": dict(OFFICIAL_DIFFUSION, learn_sigma=config.learn_sigma),
        "codec": codec,
        "class_names": None,
        "extra": extra,
    }
