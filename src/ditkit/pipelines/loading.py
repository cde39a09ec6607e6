"""Finding the model and the codec to sample with: the bundled default, a checkpoint, a ``--vae`` override."""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DitkitError

# The SD VAE the DiT paper samples through; official .pt checkpoints carry no codec info.
DEFAULT_VAE = "stabilityai/sd-vae-ft-ema"
DEFAULT_MODEL = "mnist-dit"  # the bundled model ``ditkit sample`` uses without --checkpoint


def default_checkpoint() -> Path:
    """The model ``ditkit sample`` uses when no ``--checkpoint`` is given (bundled in the package)."""
    from ..checkpoints import bundled_models

    folder = bundled_models().get(DEFAULT_MODEL)
    if folder is None:
        raise DitkitError("no default model is bundled with this ditkit yet; pass --checkpoint PATH "
                          "(a ditkit checkpoint folder or an official DiT .pt file)")
    return folder


@dataclass
class LoadedModel:
    """A model ready to sample from, with what the checkpoint says about it."""

    model: object
    checkpoint: str
    diffusion_config: dict = field(default_factory=dict)
    codec_config: dict | None = None  # None: the checkpoint does not say (official .pt files)
    class_names: list[str] | None = None
    text_encoder_config: dict | None = None  # text models: the frozen text encoder they were trained with
    sampling: dict = field(default_factory=dict)  # how the model samples best (sampler, steps, cfg_scale), if recorded
    extra: dict = field(default_factory=dict)  # the checkpoint's whole ``extra`` (text_encoder and sampling included)


def load_for_sampling(checkpoint: str | Path | None, *, device="cpu", **config_overrides) -> LoadedModel:
    """Load a ditkit checkpoint folder, an official ``.pt`` file or name, or the bundled default (None).

    ``config_overrides`` (e.g. ``num_heads=4``) fill in what official files cannot store."""
    from ..checkpoints import load_checkpoint

    loaded = load_checkpoint(checkpoint if checkpoint is not None else default_checkpoint(), map_location=device,
                             **config_overrides)
    config = loaded.config
    model = loaded.model.to(device).eval()
    return LoadedModel(model=model, checkpoint=str(Path(loaded.source).resolve()),
                       diffusion_config=dict(config.get("diffusion") or {}), codec_config=config.get("codec"),
                       class_names=config.get("class_names"),
                       text_encoder_config=(config.get("extra") or {}).get("text_encoder"),
                       sampling=dict((config.get("extra") or {}).get("sampling") or {}),
                       extra=dict(config.get("extra") or {}))


@contextmanager
def _quiet_diffusers():
    """diffusers / huggingface_hub chatter (advice to install accelerate, deprecations) is not for our
    users: ``ditkit sample`` speaks in one line when something goes wrong."""
    from diffusers.utils import logging as diffusers_logging
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        diffusers_logging.set_verbosity(level)


def load_codec(loaded: LoadedModel, vae: str | None, *, device="cpu"):
    """The codec to decode with: ``vae`` ("none" = keep raw latents, an id or a local folder) overrides
    the checkpoint's own codec; official checkpoints (4 latent channels) default to the SD VAE."""
    from .. import codecs

    if vae is not None and vae.lower() == "none":
        return None
    in_channels = loaded.model.config.in_channels
    if vae is not None:
        spec = vae
    elif loaded.codec_config is not None:
        spec = loaded.codec_config
    else:  # no codec info (official .pt): the SD VAE for 4-channel latents, else pixel space
        spec = DEFAULT_VAE if in_channels == 4 else "pixel"
    pixel = spec.get("type") == "pixel" if isinstance(spec, dict) else spec.lower() in ("pixel", "pixels")
    try:
        with nullcontext() if pixel else _quiet_diffusers():  # importing diffusers takes seconds
            codec = codecs.make_codec(spec, image_channels=in_channels)
    except DitkitError as exc:
        raise DitkitError(f"{str(exc).rstrip('.')} (use --vae PATH for a local AutoencoderKL folder, or --vae none "
                          "to save the raw latents)") from None
    return codec.to(device)
