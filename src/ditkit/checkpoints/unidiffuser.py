"""UniDiffuser files: our folder format, and the official ``uvit_v1.pth`` / ``caption_decoder.pth``.

Our folder: ``config.json`` (format ``ditkit-unidiffuser``: the U-ViT, codec, text and image encoders,
caption decoder and image size, the ditkit version, ``extra``) beside ``model.safetensors`` (keys ``uvit.*``
and ``caption_decoder.*``). Official files are pickles: read with ``weights_only=True`` only, the U-ViT config
inferred from the tensor shapes, any mismatch one DitkitError.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..errors import DitkitError
from ..fileio import atomic_dir, check_replaceable
from ..models.uvit import UViT, UViTConfig, infer_uvit_config, load_uvit_state_dict
from ..version import __version__
from .bundled import locate, shown
from .format import (CONFIG_NAME, DECODER_FORMAT, FORMAT, UNI_FORMAT, WEIGHTS_NAME, decoder_message, read_json,
                     read_safetensors)
from .official import is_state_dict, safe_torch_load, strip_wrapper_prefixes

__all__ = ["UNI_FORMAT", "save_unidiffuser_folder", "read_unidiffuser_config", "read_unidiffuser_folder",
           "is_unidiffuser_folder", "load_official_uvit", "read_caption_decoder_state"]


def is_unidiffuser_folder(path) -> bool:
    """Whether ``path`` (a folder, or a bundled model's name) is one of our UniDiffuser checkpoints."""
    try:
        return json.loads((locate(path) / CONFIG_NAME).read_text()).get("format") == UNI_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


UNI_WHAT = "a ditkit UniDiffuser checkpoint (its config.json says \"format\": \"ditkit-unidiffuser\")"


def save_unidiffuser_folder(path, config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """Write config + weights atomically; an existing folder is replaced only if it is one of ours (or empty)."""
    path = Path(path).expanduser()
    check_replaceable(path, is_unidiffuser_folder, UNI_WHAT)  # before any work: anything else is the user's
    data = {"format": UNI_FORMAT, "ditkit_version": __version__, **config}
    try:
        text = json.dumps(data, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise DitkitError(f"the UniDiffuser config is not JSON-serialisable ({exc}).") from None
    with atomic_dir(path, is_unidiffuser_folder, UNI_WHAT) as tmp:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(weights, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "ditkit_version": __version__})
        (tmp / CONFIG_NAME).write_text(text)
    return path


def read_unidiffuser_config(path) -> dict:
    """The config of a UniDiffuser folder (or bundled name) whose weights file is there; one DitkitError if not."""
    path = locate(path)
    if not path.is_dir():
        raise DitkitError(f"{shown(path)} is not a folder: a UniDiffuser checkpoint is a folder with "
                          f"{CONFIG_NAME}.")
    if not (path / CONFIG_NAME).is_file():
        raise DitkitError(f"{shown(path)} is not a ditkit UniDiffuser checkpoint (it has no {CONFIG_NAME}).")
    config = read_json(path / CONFIG_NAME)
    if config.get("format") == FORMAT:
        raise DitkitError(f"{shown(path)} is a DiT checkpoint, not a UniDiffuser: sample it with `ditkit sample "
                          f"--checkpoint {shown(path)}` (a text model is scored with `ditkit t2i-eval`).")
    if config.get("format") == DECODER_FORMAT:
        raise DitkitError(decoder_message(shown(path)))
    if config.get("format") != UNI_FORMAT or not isinstance(config.get("uvit"), dict):
        raise DitkitError(f"{shown(path)} is not a ditkit UniDiffuser checkpoint (its {CONFIG_NAME} has another "
                          "format).")
    if not (path / WEIGHTS_NAME).is_file():
        raise DitkitError(f"{shown(path)} has no {WEIGHTS_NAME}.")
    return config


def read_unidiffuser_folder(path) -> tuple[dict, dict[str, torch.Tensor]]:
    config = read_unidiffuser_config(path)
    return config, read_safetensors(locate(path) / WEIGHTS_NAME)


def _read_pickled_state(path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DitkitError(f"{what} {path} does not exist.")
    obj = safe_torch_load(path)
    for key in ("model", "state_dict", "ema"):  # wrappers some training scripts add
        if isinstance(obj, dict) and not is_state_dict(obj) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not is_state_dict(obj):
        raise DitkitError(f"{path} does not hold a state dict of tensors, so it is not a {what}.")
    return strip_wrapper_prefixes(obj)


def load_official_uvit(path, *, config: UViTConfig | dict | None = None, num_heads: int | None = None) -> UViT:
    """The official U-ViT (``uvit_v1.pth``) with its config read off the shapes (or checked against ``config``)."""
    state = _read_pickled_state(path, "U-ViT checkpoint")
    if config is None:
        config = infer_uvit_config(state, num_heads=num_heads)
    elif isinstance(config, dict):
        config = UViTConfig.from_dict(config)
    with torch.device("meta"):
        model = UViT(config)
    model = model.to_empty(device="cpu")
    return load_uvit_state_dict(model, state, source=str(path)).eval()


def read_caption_decoder_state(path, text_dim: int) -> dict[str, torch.Tensor]:
    """The official caption decoder's tensors (``gpt.*``, ``encode_prefix``, ``decode_prefix``), checked against
    the U-ViT's text width ``text_dim``."""
    state = _read_pickled_state(path, "caption decoder")
    needed = ("encode_prefix.weight", "decode_prefix.weight", "gpt.transformer.wte.weight", "gpt.transformer.wpe.weight")
    missing = [k for k in needed if k not in state]
    if missing:
        raise DitkitError(f"{path} is not a UniDiffuser caption decoder (no {missing[0]!r}).")
    # Old GPT-2 pickles also carry the causal-mask buffers, which transformers now builds itself.
    state = {k: v for k, v in state.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    width = state["decode_prefix.weight"].shape[1]
    if width != text_dim or state["encode_prefix.weight"].shape[0] != text_dim:
        raise DitkitError(f"the caption decoder {path} has prefix width {width}, but the U-ViT's text tokens are "
                          f"{text_dim}-d; they do not belong together.")
    return state
