"""Stable Diffusion's VAE (diffusers ``AutoencoderKL``) as a DiT codec.

As in the paper, images (N, 3, H, W) in [-1, 1] become latents (N, 4, H/8, W/8) multiplied by the VAE's
scaling factor (0.18215 for the SD VAEs, so latents have roughly unit variance), and training encodes with
a *sample* of the latent distribution rather than its mean.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import DitkitError
from .base import Codec

# The two VAEs DiT was trained and evaluated with (train.py's --vae ema|mse).
VAE_SHORTHANDS = {
    "ema": "stabilityai/sd-vae-ft-ema",
    "mse": "stabilityai/sd-vae-ft-mse",
    "sd-vae-ft-ema": "stabilityai/sd-vae-ft-ema",
    "sd-vae-ft-mse": "stabilityai/sd-vae-ft-mse",
}
# diffusers' default; the SD VAE configs on the hub predate the config key and rely on it.
DEFAULT_SCALING_FACTOR = 0.18215
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _resolve_source(spec: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is a local folder)."""
    spec = VAE_SHORTHANDS.get(spec.lower(), spec)
    path = Path(spec).expanduser()
    if path.exists():
        if not (path.is_dir() and (path / "config.json").is_file()):
            raise DitkitError(
                f"{spec} is not a VAE folder: expected a directory with config.json, as written by "
                "AutoencoderKL.save_pretrained."
            )
        return str(path.resolve()), True
    if _HUB_ID.fullmatch(spec):
        return spec, False
    raise DitkitError(
        f"No VAE folder at {spec}, and it is not a Hugging Face hub id like stabilityai/sd-vae-ft-ema."
    )


def _load_autoencoder(source: str, local: bool):
    from diffusers import AutoencoderKL  # heavy import, only when a VAE is actually used

    try:
        return AutoencoderKL.from_pretrained(source)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if local:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DitkitError(f"Could not load the VAE folder {source}: {reason}") from None
        raise DitkitError(
            f"Could not load the VAE {source} from the Hugging Face hub (it can't be reached from here, or "
            "has no such model); pass a local folder written by AutoencoderKL.save_pretrained instead."
        ) from None


class VAECodec(Codec):
    """A frozen ``AutoencoderKL``: encode samples the latent distribution, latents are scaled.

    ``source`` is a hub id (``stabilityai/sd-vae-ft-ema``), a shorthand (``ema``, ``mse``), a local
    folder, or an already built ``AutoencoderKL``.
    """

    def __init__(self, source, *, scaling_factor: float | None = None):
        if isinstance(source, (str, Path)):
            self.source, local = _resolve_source(str(source))
            vae = _load_autoencoder(self.source, local)
        else:  # an AutoencoderKL instance
            vae, self.source = source, getattr(source.config, "_name_or_path", None)
        self.vae = vae.eval().requires_grad_(False)
        config = self.vae.config
        if scaling_factor is None:
            scaling_factor = getattr(config, "scaling_factor", None) or DEFAULT_SCALING_FACTOR
        self.scaling_factor = float(scaling_factor)
        self.latent_channels = int(config.latent_channels)
        self.image_channels = int(config.in_channels)
        # each encoder block but the last halves the resolution
        self.downsample = 2 ** (len(config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def to(self, device) -> "VAECodec":
        self.vae.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] → a sample of the latent distribution × scaling factor."""
        self._check_images(images)
        self.latent_size(images.shape[-1])
        self.latent_size(images.shape[-2])
        images = images.to(device=self.device, dtype=self.vae.dtype)
        posterior = self.vae.encode(images).latent_dist
        return posterior.sample(generator=generator) * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents → images, nominally in [-1, 1] (not clamped: callers clamp when saving)."""
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise DitkitError(
                f"Expected latents shaped (N, {self.latent_channels}, h, w), got {tuple(latents.shape)}."
            )
        latents = latents.to(device=self.device, dtype=self.vae.dtype)
        return self.vae.decode(latents / self.scaling_factor).sample

    def to_config(self) -> dict:
        return {
            "type": "vae",
            "source": self.source,
            "scaling_factor": self.scaling_factor,
            "latent_channels": self.latent_channels,
            "downsample": self.downsample,
        }
