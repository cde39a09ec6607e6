"""Saving and loading DiT weights: our format, the official releases, and their download.

Our format is a folder: ``config.json`` (model / diffusion / codec config, class names, ditkit version)
beside ``model.safetensors`` (the weights to sample from). Safetensors holds only tensors, so loading it
can never run code.

Official DiT files are pickles. They are read with ``torch.load(weights_only=True)``, allowing exactly one
extra class, ``argparse.Namespace`` (the ``args`` a ``train.py`` checkpoint carries) — never an arbitrary
unpickle. Official files store no config, so it is inferred from tensor shapes.

Sections: paths and config · saving · reading files · config inference · building the model · loading ·
official downloads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import DitkitError
from .models.dit import BLOCKS, MODEL_SIZES, DiT, DiTConfig, preset_config, resolve_config
from .version import __version__

__all__ = [
    "CONFIG_NAME", "WEIGHTS_NAME", "LoadedCheckpoint", "save_pretrained", "from_pretrained", "load_model",
    "load_checkpoint", "infer_config", "download_official", "official_filename", "OFFICIAL_CHECKPOINTS",
    "bundled_models",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "ditkit"
# Models shipped inside the package; their folder names work wherever a checkpoint path does.
BUNDLED_MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"

# Diffusion settings every official DiT was trained with (create_diffusion's defaults).
OFFICIAL_DIFFUSION = {"diffusion_steps": 1000, "noise_schedule": "linear"}


# --------------------------------------------------------------------------------------------
# Saving
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


def save_pretrained(model: DiT, path, *, diffusion=None, codec=None, class_names=None, extra=None) -> Path:
    """Write ``model`` as a ditkit checkpoint folder at ``path``, atomically.

    Everything is written into a temporary sibling folder which then takes the place of ``path``, so a
    crash or error never leaves a half-written checkpoint and never damages an existing one. An existing
    ditkit checkpoint at ``path`` is replaced (whole); any other existing file or folder is refused.
    ``codec`` / ``diffusion`` may be dicts or objects with ``to_config()``.
    """
    path = Path(path).expanduser()
    for wrapper in ("module", "_orig_mod"):  # DDP / FSDP and torch.compile wrappers hold the DiT inside
        model = getattr(model, wrapper, model)
    config_text = json.dumps(
        make_checkpoint_config(model, diffusion=diffusion, codec=codec, class_names=class_names, extra=extra),
        indent=2,
    )
    if path.exists() and not _is_replaceable(path):
        raise DitkitError(f"{path} exists and is not a ditkit checkpoint, so it was not overwritten.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "ditkit_version": __version__})
        (tmp / CONFIG_NAME).write_text(config_text + "\n")
        _apply_umask_permissions(tmp)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _apply_umask_permissions(folder: Path) -> None:
    """mkdtemp makes private (0700) folders; give the checkpoint the permissions a plain mkdir would."""
    umask = _umask()
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _swap_into_place(new: Path, path: Path) -> None:
    """Rename ``new`` to ``path``; an existing ``path`` is moved aside first and restored on failure."""
    if not path.exists():
        os.replace(new, path)
        return
    # POSIX cannot rename a folder over a non-empty one: move the old one aside, then drop it.
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Reading files (every failure becomes one readable DitkitError)
# --------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _safe_torch_load(path: Path):
    """``torch.load`` that can only build tensors, plain containers and argparse.Namespace."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files: KeyError, EOFError, RuntimeError, ...
        if "Unsupported global" in str(exc):
            raise DitkitError(
                f"{path} contains Python objects other than tensors, so it was not unpickled (only official "
                "DiT state dicts and train.py checkpoints are accepted)."
            ) from None
        # torch's own words help only for damaged zip archives; other types (KeyError 101, ...) say nothing
        reason = f" ({_first_line(exc).split('. ')[0]})" if type(exc) is RuntimeError else ""
        raise DitkitError(
            f"Could not read {path}: it is not a PyTorch checkpoint, or it is truncated or corrupt{reason}."
        ) from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError
        raise DitkitError(
            f"Could not read {path}: it is not a safetensors file, or it is truncated or corrupt "
            f"({_first_line(exc)})."
        ) from None


def _read_config(folder: Path) -> dict:
    file = folder / CONFIG_NAME
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DitkitError(f"Could not read {file} as JSON ({_first_line(exc)}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("model"), dict):
        raise DitkitError(f"{file} is not a ditkit checkpoint config (it lacks \"format\": \"ditkit\" and a model).")
    return data


def _strip_wrapper_prefixes(state_dict: dict) -> dict:
    """DDP ('module.') and torch.compile ('_orig_mod.') prefixes, when every key carries them."""
    for prefix in ("module.", "_orig_mod."):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


# --------------------------------------------------------------------------------------------
# Config inference from the official key layout
# --------------------------------------------------------------------------------------------


def _describe(config: DiTConfig) -> str:
    return (f"DiT (hidden {config.hidden_size}, depth {config.depth}, patch {config.patch_size}, "
            f"input {config.in_channels}x{config.input_size}x{config.input_size}, "
            f"{config.num_classes} classes, block {config.block})")


def _train_args(args) -> dict:
    if args is None:
        return {}
    return dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args) if isinstance(args, dict) else {}


def _guess_heads(hidden: int, depth: int, args: dict, notes: list[str]) -> int:
    """num_heads is invisible in the weights: train args, then the paper's sizes, then head dim 64."""
    name = args.get("model")
    if isinstance(name, str):
        try:
            preset = preset_config(name)
        except DitkitError:
            preset = None
        if preset and (preset["hidden_size"], preset["depth"]) == (hidden, depth):
            return preset["num_heads"]
        notes.append(f"the train args name {name}, which does not match the weights' shapes; ignored it")
    for size in MODEL_SIZES.values():
        if (size["hidden_size"], size["depth"]) == (hidden, depth):
            return size["num_heads"]
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    notes.append(
        f"num_heads is not stored in the weights and this is no paper size: guessed {heads} "
        f"(head width 64); pass num_heads (--num-heads) if the model used another"
    )
    return heads


def infer_config(state_dict: dict, *, train_args=None, notes: list[str] | None = None, **overrides) -> DiTConfig:
    """The DiTConfig of an official-layout state dict, read off its tensor shapes.

    ``train_args`` (the ``args`` of a train.py checkpoint) supply num_heads when they agree with the
    shapes; explicit ``overrides`` win over everything inferred.
    """
    notes = [] if notes is None else notes
    args = _train_args(train_args)
    overrides = {k: v for k, v in overrides.items() if v is not None}

    def shape(key: str, ndim: int):
        tensor = state_dict.get(key)
        if tensor is None or tensor.ndim != ndim:
            raise DitkitError(f"These weights are not a DiT state dict: {key!r} is missing or malformed.")
        return tuple(tensor.shape)

    hidden, in_channels, patch, _ = shape("x_embedder.proj.weight", 4)
    tokens = shape("pos_embed", 3)[1]
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise DitkitError(f"The pos_embed of these weights has {tokens} positions, not a square grid.")
    block_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    if not block_ids:
        raise DitkitError("These weights are not a DiT state dict: they have no transformer blocks.")
    depth = max(block_ids) + 1
    mlp_ratio = shape("blocks.0.mlp.fc1.weight", 2)[0] / hidden
    out_channels, leftover = divmod(shape("final_layer.linear.weight", 2)[0], patch * patch)
    if leftover or out_channels not in (in_channels, 2 * in_channels):
        raise DitkitError(
            f"The final layer predicts {out_channels} channels per pixel, which fits neither {in_channels} "
            f"nor {2 * in_channels} (learned sigma) for {in_channels} input channels."
        )
    dropout = overrides.get("class_dropout_prob", 0.1)  # the official value; not visible in the shapes
    table = state_dict.get("y_embedder.embedding_table.weight")
    # the label table has a null-class row exactly when labels can be dropped (classifier-free guidance)
    num_classes = 0 if table is None else table.shape[0] - (1 if dropout > 0 else 0)
    if "num_heads" in overrides:
        heads = overrides["num_heads"]
    else:
        heads = _guess_heads(hidden, depth, args, notes)
    inferred = dict(
        input_size=grid * patch, patch_size=patch, in_channels=in_channels, hidden_size=hidden, depth=depth,
        num_heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes, class_dropout_prob=dropout,
        learn_sigma=out_channels == 2 * in_channels, block="adaln-zero",
    )
    if "block" not in overrides:
        inferred["block"] = _infer_block(state_dict, inferred)
    return resolve_config(inferred, **overrides)


def _expected_shapes(config: DiTConfig) -> dict[str, tuple]:
    with torch.device("meta"):
        model = DiT(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _infer_block(state_dict: dict, config: dict) -> str:
    """The block design whose parameter layout the weights have exactly (official ones are adaLN-Zero)."""
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    for block in BLOCKS:
        try:
            candidate = DiTConfig.from_dict(dict(config, block=block))
        except DitkitError:
            return "adaln-zero"  # an invalid config; the build reports it
        if _expected_shapes(candidate) == got:
            return block
    return "adaln-zero"  # none fits exactly: the strict load names the differences


# --------------------------------------------------------------------------------------------
# Building the model and loading weights strictly
# --------------------------------------------------------------------------------------------


def _few(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _check_fits(config: DiTConfig, state_dict: dict, source) -> None:
    expected = _expected_shapes(config)
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = [
        f"{k} is {list(got[k])} in the checkpoint but {list(expected[k])} in the model"
        for k in expected if k in got and got[k] != expected[k]
    ]
    problems = []
    if mismatched:
        problems.append("shapes differ (" + _few(mismatched) + ")")
    if missing:
        problems.append(f"{len(missing)} keys are missing ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} keys are unexpected ({_few(unexpected)})")
    if problems:
        raise DitkitError(f"The weights in {source} do not fit a {_describe(config)}: " + "; ".join(problems) + ".")


def _build(config: DiTConfig, state_dict: dict, source, map_location) -> DiT:
    _check_fits(config, state_dict, source)
    # Build without initialising (meta device), then adopt the loaded tensors: loading XL/2 skips 675M
    # random initialisations. Weights are used in float32 whatever precision they were stored in.
    with torch.device("meta"):
        model = DiT(config)
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.to(map_location).eval()


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """A loaded model with its full config (our format's ``config.json`` layout, synthesized for official
    files), what kind of file it came from and notes on anything guessed."""

    model: DiT
    config: dict
    kind: str  # "ditkit", "official-state-dict", "official-train-checkpoint"
    source: Path
    notes: list[str] = field(default_factory=list)


def bundled_models() -> dict[str, Path]:
    """The models shipped in the package, by name (e.g. ``"mnist-dit"``): folders with a config."""
    if not BUNDLED_MODELS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_MODELS_DIR.iterdir()) if (p / CONFIG_NAME).is_file()}


def _locate(path) -> tuple[str, Path]:
    """(kind of file, path) for anything load_checkpoint accepts."""
    p = Path(path).expanduser()
    if not p.exists():
        bundled = bundled_models().get(str(path))
        if bundled is not None:
            return "ditkit", bundled
        name = official_filename(str(path))
        if name is not None:
            return "pickle", download_official(name)
        names = ", ".join(bundled_models())
        raise DitkitError(f"No checkpoint at {path}" + (f" (bundled models: {names})." if names else "."))
    if p.is_dir():
        if (p / CONFIG_NAME).is_file():
            return "ditkit", p
        raise DitkitError(f"{p} is a folder without {CONFIG_NAME}, so it is not a ditkit checkpoint.")
    if p.name == CONFIG_NAME or (p.suffix == ".safetensors" and (p.parent / CONFIG_NAME).is_file()):
        return "ditkit", p.parent
    if p.suffix == ".safetensors":
        return "safetensors", p  # a bare state dict in the official layout
    return "pickle", p


def _foreign_config(config: DiTConfig, kind: str, args: dict) -> dict:
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


def load_checkpoint(path, *, use_ema: bool = True, map_location="cpu", **config_overrides) -> LoadedCheckpoint:
    """Load any supported checkpoint; see ``load_model``."""
    config_overrides = {k: v for k, v in config_overrides.items() if v is not None}
    kind, p = _locate(path)
    notes: list[str] = []
    if kind == "ditkit":
        data = _read_config(p)
        weights = p / WEIGHTS_NAME
        if not weights.is_file():
            raise DitkitError(f"{p} has {CONFIG_NAME} but no {WEIGHTS_NAME}.")
        config = resolve_config(data["model"], **config_overrides)
        data = dict(data, model=config.to_dict())
        model = _build(config, _read_safetensors(weights), weights, map_location)
        return LoadedCheckpoint(model, data, "ditkit", p, notes)

    args: dict = {}
    if kind == "safetensors":
        state_dict, source_kind = _read_safetensors(p), "official-state-dict"
    else:
        obj = _safe_torch_load(p)
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # train.py: model, ema, opt, args
            source_kind = "official-train-checkpoint"
            args = _train_args(obj.get("args"))
            if use_ema and isinstance(obj.get("ema"), dict):
                state_dict = obj["ema"]
                notes.append("loaded the EMA weights")
            else:
                state_dict = obj["model"]
                notes.append("loaded the raw (non-EMA) weights" + ("" if not use_ema else ": the file has no EMA"))
        else:
            state_dict, source_kind = obj, "official-state-dict"
    if not _is_state_dict(state_dict):
        raise DitkitError(
            f"{p} holds no DiT weights (expected a state dict of tensors, or a train.py checkpoint with "
            "'model' and 'ema')."
        )
    state_dict = _strip_wrapper_prefixes(state_dict)
    config = infer_config(state_dict, train_args=args, notes=notes, **config_overrides)
    for note in notes:
        if "guessed" in note or "ignored" in note:
            warnings.warn(f"{p}: {note}", stacklevel=3)
    model = _build(config, state_dict, p, map_location)
    return LoadedCheckpoint(model, _foreign_config(config, source_kind, args), source_kind, p, notes)


def load_model(path, *, use_ema: bool = True, map_location="cpu", **config_overrides) -> DiT:
    """A DiT from a ditkit folder (or its config.json / model.safetensors), an official state dict
    (``DiT-XL-2-256x256.pt`` layout), an official train.py checkpoint (its EMA weights unless
    ``use_ema=False``), or an official name like ``"DiT-XL/2-256"`` (downloaded and cached).

    Official files carry no config: it is inferred from key shapes; ``config_overrides`` (e.g.
    ``num_heads=4`` for a model of no paper size) override it. Loading is strict.
    """
    return load_checkpoint(path, use_ema=use_ema, map_location=map_location, **config_overrides).model


def from_pretrained(path, *, map_location="cpu", **config_overrides) -> tuple[DiT, dict]:
    """(model, config dict) — the counterpart of ``save_pretrained``; also reads official files."""
    loaded = load_checkpoint(path, map_location=map_location, **config_overrides)
    return loaded.model, loaded.config


# --------------------------------------------------------------------------------------------
# The published DiT-XL/2 checkpoints
# --------------------------------------------------------------------------------------------

OFFICIAL_URL = "https://dl.fbaipublicfiles.com/DiT/models/"
# No checksums are published for these files, so a download is verified by loading it safely and
# checking every key and shape against the DiT-XL/2 model it must be.
OFFICIAL_CHECKPOINTS = {
    "DiT-XL-2-256x256.pt": dict(preset_config("DiT-XL/2"), input_size=32, in_channels=4, num_classes=1000),
    "DiT-XL-2-512x512.pt": dict(preset_config("DiT-XL/2"), input_size=64, in_channels=4, num_classes=1000),
}
_ALIASES = {
    alias.lower(): filename
    for size, filename in ((256, "DiT-XL-2-256x256.pt"), (512, "DiT-XL-2-512x512.pt"))
    for alias in (f"DiT-XL/2-{size}", f"DiT-XL-2-{size}", f"DiT-XL/2@{size}", f"DiT-XL-2-{size}x{size}",
                  f"DiT-XL/2-{size}x{size}", filename)
}


def official_filename(name: str) -> str | None:
    """'DiT-XL/2-256' (and similar spellings) → 'DiT-XL-2-256x256.pt'; None for anything else."""
    name = name.strip()
    if name in OFFICIAL_CHECKPOINTS:
        return name
    return _ALIASES.get(name.lower())


def default_cache_dir() -> Path:
    return Path(os.environ.get("DITKIT_CACHE") or Path.home() / ".cache" / "ditkit").expanduser()


def download_official(name: str, cache_dir=None, *, base_url: str = OFFICIAL_URL, progress: bool = True) -> Path:
    """Path of a published DiT checkpoint in the cache, downloading and verifying it the first time.

    The download goes to a temporary file that is renamed into the cache only once verified, so the
    cache never holds a partial or wrong file.
    """
    filename = official_filename(name)
    if filename is None:
        raise DitkitError(f"Unknown official checkpoint {name!r}; expected one of {', '.join(OFFICIAL_CHECKPOINTS)}.")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / filename
    if target.is_file():
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DitkitError(f"Could not create the cache folder {cache} ({_first_line(exc)}).") from None
    url = base_url.rstrip("/") + "/" + filename
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=cache)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, progress)
        _verify_official(tmp, filename)
        tmp.chmod(0o666 & ~_umask())  # mkstemp files are private
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _fetch(url: str, out, progress: bool) -> None:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or _first_line(exc)
        raise DitkitError(
            f"Could not download {url} ({reason}); the server can't be reached from here — download the file "
            "elsewhere and pass its path instead."
        ) from None
    if received == 0 or (total is not None and received != total):
        raise DitkitError(f"The download of {url} was incomplete ({received} of {total or '?'} bytes).")


def _verify_official(path: Path, filename: str) -> None:
    state_dict = _safe_torch_load(path)
    if not _is_state_dict(state_dict):
        raise DitkitError(f"The downloaded {filename} is not a state dict of tensors.")
    _check_fits(DiTConfig.from_dict(dict(DiTConfig().to_dict(), **OFFICIAL_CHECKPOINTS[filename])), state_dict, filename)
