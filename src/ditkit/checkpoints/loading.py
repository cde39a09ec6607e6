"""``load_checkpoint`` / ``load_model``: a DiT from any checkpoint ditkit reads.

Accepted: our folder (or its config.json / model.safetensors), a bundled model's name, an official state
dict or train.py checkpoint, a bare official-layout ``.safetensors``, an official name like
``"DiT-XL/2-256"`` (downloaded and cached), and a diffusers DiT folder (``ditkit.interop.diffusers``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DitkitError
from ..interop import diffusers as diffusers_format
from ..models.dit import DiT, resolve_config
from .bundled import bundled_models, locate, shown
from .download import download_official, official_filename
from .format import (CONFIG_NAME, DECODER_FORMAT, FORMAT, UNI_FORMAT, WEIGHTS_NAME, decoder_message, read_json,
                     read_safetensors)
from .inference import build_model, infer_config
from .official import foreign_config, is_state_dict, read_official, strip_wrapper_prefixes


@dataclass
class LoadedCheckpoint:
    """A loaded model with its full config (our format's ``config.json`` layout, synthesized for foreign
    files), what kind of file it came from and notes on anything guessed."""

    model: DiT
    config: dict
    kind: str  # "ditkit", "official-state-dict", "official-train-checkpoint", "diffusers"
    source: Path
    notes: list[str] = field(default_factory=list)


def _locate(path) -> tuple[str, Path]:
    """(kind of file, path) for anything load_checkpoint accepts."""
    p = locate(path)  # a path, else a bundled model's folder
    if not p.exists():
        name = official_filename(str(path))
        if name is not None:
            return "pickle", download_official(name)
        names = ", ".join(bundled_models())
        raise DitkitError(f"No checkpoint at {path}" + (f" (bundled models: {names})." if names else "."))
    if p.is_dir():
        if diffusers_format.is_diffusers_folder(p):
            return "diffusers", p
        if (p / CONFIG_NAME).is_file():
            return "ditkit", p
        raise DitkitError(f"{p} is a folder without {CONFIG_NAME}, so it is not a ditkit checkpoint.")
    if p.name == CONFIG_NAME or (p.suffix == ".safetensors" and (p.parent / CONFIG_NAME).is_file()):
        return _locate(p.parent)
    if p.suffix == ".safetensors":
        return "safetensors", p  # a bare state dict in the official layout
    return "pickle", p


def read_config(folder: Path) -> dict:
    """A ditkit checkpoint folder's config.json; a UniDiffuser or caption-decoder folder, or anything else, is one
    readable error that says what it is."""
    file = folder / CONFIG_NAME
    data = read_json(file)
    if data.get("format") == UNI_FORMAT:
        raise DitkitError(f"{shown(folder)} is a UniDiffuser checkpoint, not a DiT: sample it with "
                          f"`ditkit uni MODE --checkpoint {shown(folder)}` (`ditkit uni --help` lists the modes) and "
                          "score it with `ditkit uni-eval`.")
    if data.get("format") == DECODER_FORMAT:
        raise DitkitError(decoder_message(shown(folder)))
    if data.get("format") != FORMAT or not isinstance(data.get("model"), dict):
        raise DitkitError(f"{shown(file)} is not a ditkit checkpoint config (it lacks \"format\": \"ditkit\" and a "
                          "model).")
    return data


def _load_ditkit(p: Path, map_location, overrides: dict) -> LoadedCheckpoint:
    data = read_config(p)
    weights = p / WEIGHTS_NAME
    if not weights.is_file():
        raise DitkitError(f"{p} has {CONFIG_NAME} but no {WEIGHTS_NAME}.")
    config = resolve_config(data["model"], **overrides)
    data = dict(data, model=config.to_dict())
    model = build_model(config, read_safetensors(weights), weights, map_location)
    return LoadedCheckpoint(model, data, "ditkit", p, [])


def _load_diffusers(p: Path, map_location, overrides: dict) -> LoadedCheckpoint:
    data, state_dict, weights = diffusers_format.read_folder(p)
    config = resolve_config(data["model"], **overrides)
    data = {"format": FORMAT, **data, "model": config.to_dict()}
    model = build_model(config, state_dict, weights, map_location)
    return LoadedCheckpoint(model, data, "diffusers", p, [])


def load_checkpoint(path, *, use_ema: bool = True, map_location="cpu", **config_overrides) -> LoadedCheckpoint:
    """Load any supported checkpoint; see ``load_model``."""
    config_overrides = {k: v for k, v in config_overrides.items() if v is not None}
    kind, p = _locate(path)
    if kind == "ditkit":
        return _load_ditkit(p, map_location, config_overrides)
    if kind == "diffusers":
        return _load_diffusers(p, map_location, config_overrides)

    notes: list[str] = []
    args: dict = {}
    if kind == "safetensors":
        state_dict, source_kind = read_safetensors(p), "official-state-dict"
    else:
        state_dict, source_kind, args = read_official(p, use_ema, notes)
    if not is_state_dict(state_dict):
        raise DitkitError(
            f"{p} holds no DiT weights (expected a state dict of tensors, or a train.py checkpoint with "
            "'model' and 'ema')."
        )
    state_dict = strip_wrapper_prefixes(state_dict)
    config = infer_config(state_dict, train_args=args, notes=notes, **config_overrides)
    for note in notes:
        if "guessed" in note or "ignored" in note:
            warnings.warn(f"{p}: {note}", stacklevel=3)
    model = build_model(config, state_dict, p, map_location)
    return LoadedCheckpoint(model, foreign_config(config, source_kind, args), source_kind, p, notes)


def load_model(path, *, use_ema: bool = True, map_location="cpu", **config_overrides) -> DiT:
    """A DiT from a ditkit folder (or its config.json / model.safetensors), an official state dict
    (``DiT-XL-2-256x256.pt`` layout), an official train.py checkpoint (its EMA weights unless
    ``use_ema=False``), an official name like ``"DiT-XL/2-256"`` (downloaded and cached), or a diffusers
    DiT folder (the pipeline folder or its ``transformer`` subfolder).

    Official files carry no config: it is inferred from key shapes; ``config_overrides`` (e.g.
    ``num_heads=4`` for a model of no paper size) override it. Loading is strict.
    """
    return load_checkpoint(path, use_ema=use_ema, map_location=map_location, **config_overrides).model


def from_pretrained(path, *, map_location="cpu", **config_overrides) -> tuple[DiT, dict]:
    """(model, config dict) — the counterpart of ``save_pretrained``; also reads official files."""
    loaded = load_checkpoint(path, map_location=map_location, **config_overrides)
    return loaded.model, loaded.config
