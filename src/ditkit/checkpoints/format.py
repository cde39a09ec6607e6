"""Our checkpoint format: a folder of ``config.json`` beside ``model.safetensors``.

``config.json`` holds the model / diffusion / codec config, class names and the ditkit version;
``model.safetensors`` the weights to sample from. Safetensors holds only tensors, so loading it can never
run code. Every failure to read becomes one readable DitkitError (the readers are ``ditkit.fileio``'s;
``loading.read_config`` checks a folder's config).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from ..errors import DitkitError
from ..fileio import atomic_dir, check_replaceable
from ..fileio import first_line, read_json, read_safetensors  # noqa: F401 (the readers, kept importable from here)
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
