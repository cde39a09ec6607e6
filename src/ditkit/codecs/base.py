"""The codec interface: how images become the tensors a DiT models, and back.

DiT is a latent diffusion model: a frozen autoencoder maps images to latents and the transformer models
those latents. Pixel-space DiT is the same model with the identity in place of the autoencoder. Both sides
see images as float tensors (N, C, H, W) in [-1, 1].
"""

from __future__ import annotations

import torch

from ..errors import DitkitError


class Codec:
    """Maps images in [-1, 1] to model inputs and back.

    Attributes:
        latent_channels: channels of the tensors the DiT sees (its ``in_channels``).
        downsample: spatial factor from image to latent (8 for the SD VAE, 1 for pixels).
        image_channels: channels of the images (3 for RGB, 1 for grey).
    """

    latent_channels: int
    downsample: int
    image_channels: int

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to_config(self) -> dict:
        """A JSON-able description from which ``codec_from_config`` rebuilds this codec."""
        raise NotImplementedError

    def to(self, device) -> "Codec":
        return self

    def latent_size(self, image_size: int) -> int:
        """The latent side length for a square image side, refusing sizes the codec cannot represent."""
        if image_size <= 0 or image_size % self.downsample:
            raise DitkitError(
                f"Image size {image_size} is not a positive multiple of the codec's downsampling factor "
                f"{self.downsample}."
            )
        return image_size // self.downsample

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.image_channels:
            raise DitkitError(
                f"Expected images shaped (N, {self.image_channels}, H, W), got {tuple(images.shape)}."
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_config()})"


class PixelCodec(Codec):
    """The identity: pixel-space diffusion, the model sees the image itself."""

    downsample = 1

    def __init__(self, channels: int = 3):
        if channels not in (1, 3):
            raise DitkitError(f"Pixel images have 1 or 3 channels, not {channels}.")
        self.image_channels = self.latent_channels = int(channels)

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._check_images(images)
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def to_config(self) -> dict:
        return {"type": "pixel", "channels": self.image_channels}
