"""Our checkpoint format: a folder of ``config.json`` beside ``model.safetensors``.

``config.json`` holds the model / diffusion / codec config, class names and the ditkit version;
``model.safetensors`` the weights to sample from. Safetensors holds only tensors, so loading it can never
run code. Every failure to read becomes one readable DitkitError.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import DitkitError
from ..fileio import atomic_dir, check_replaceable
from ..models.dit import DiT
from ..version import __version__

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "ditkit"
UNI_FORMAT = "ditkit-unidiffuser"  # a UniDiffuser folder (checkpoints/unidiffuser.py)
DECODER_FORMAT = "ditkit-caption-decoder"  # UniDiffuser's stage 1 (training/unidiffuser_run.py writes it)


def decoder_message(folder) -> str:
    """What a stage-1 caption-decoder checkpoint is, and where it is used (for any command given one)."""
    return (f"{folder} is a UniDiffuser caption decoder (stage 1, `ditkit train --model caption-decoder`), not a "
            f"model to sample: it is used to train the U-ViT, `ditkit train --model uvit-... --init-from {folder}`, "
            "whose checkpoints `ditkit uni` samples.")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can be pages long)."""
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _as_config_dict(value, what: str) -> dict | None:
    """A codec / diffusion given as a dict or as an object that describes itself."""
    if value is None or isinstance(value, dict):
        return value
    for method in ("to_config", "to_dict"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    raise DitkitError(f"{what} must be a dict or have a to_config() method, got {type(value).__name__}.")


def make_checkpoint_config(model: DiT, *, diffusion=None, codec=None, class_names=None, extra=None) -> dict:
    """The ``config.json`` content for ``model`` (validated, JSON-able)."""
    config = model.config
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(class_names) != config.num_classes:
            raise DitkitError(
                f"Got {len(class_names)} class names for a model with {config.num_classes} classes."
            )
    data = {
        "format": FORMAT,
        "ditkit_version": __version__,
        "model": config.to_dict(),
        "diffusion": _as_config_dict(diffusion, "diffusion") or {},
        "codec": _as_config_dict(codec, "codec"),
        "class_names": class_names,
        "extra": dict(extra or {}),
    }
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise DitkitError(f"The checkpoint config is not JSON-serialisable ({exc}).") from None
    return data


WHAT = "a ditkit checkpoint (its config.json says \"format\": \"ditkit\")"


def _is_replaceable(path: Path) -> bool:
    """Only an empty folder or one of our checkpoints may be replaced; anything else is the user's data."""
    if not path.is_dir():
        return False
    if not any(path.iterdir()):
        return True
    try:
        return json.loads((path / CONFIG_NAME).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def unwrap(model):
    """The DiT inside DDP / FSDP (``module``) and torch.compile (``_orig_mod``) wrappers."""
    for wrapper in ("module", "_orig_mod"):
        model = getattr(model, wrapper, model)
    return model


def save_pretrained(model: DiT, path, *, diffusion=None, codec=None, class_names=None, extra=None) -> Path:
    """Write ``model`` as a ditkit checkpoint folder at ``path``, atomically.

    The folder is written whole beside ``path`` and then takes its place (``ditkit.fileio.atomic_dir``), so
    a crash or error never leaves a half-written checkpoint and never damages an existing one. An existing
    ditkit checkpoint at ``path`` is replaced (whole); any other existing file or folder is refused.
    ``codec`` / ``diffusion`` may be dicts or objects with ``to_config()``.
    """
    path = Path(path).expanduser()
    model = unwrap(model)
    config = make_checkpoint_config(model, diffusion=diffusion, codec=codec, class_names=class_names, extra=extra)
    check_replaceable(path, _is_replaceable, WHAT)  # before any work: anything else there is the user's
    with atomic_dir(path, _is_replaceable, WHAT) as tmp:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "ditkit_version": __version__})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError
        raise DitkitError(
            f"Could not read {path}: it is not a safetensors file, or it is truncated or corrupt "
            f"({first_line(exc)})."
        ) from None


def read_json(file: Path) -> dict:
    """A JSON object from ``file``; anything else is one readable error."""
    try:
        data = json.loads(Path(file).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DitkitError(f"Could not read {file} as JSON ({first_line(exc)}).") from None
    if not isinstance(data, dict):
        raise DitkitError(f"{file} does not hold a JSON object.")
    return data


def read_config(folder: Path) -> dict:
    from .bundled import shown  # a bundled model is named, not its folder inside the package

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
