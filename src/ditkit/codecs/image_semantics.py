"""UniDiffuser's image-semantics token: one vector per image beside its latent (``clip_img``, (B, 1, D)).

- ``clip`` / ``clip:HUB_ID_OR_FOLDER``: CLIP's image embedding (ViT-B/32, 512-d, as UniDiffuser v1) through
  ``transformers``; needs the weights locally or the hub once.
- ``pooled:G``: offline and weightless — the image average-pooled to G×G and flattened (C·G² values in
  [-1, 1]): the colours and their layout, which is the semantics the bundled shapes vary in.
Images come in as (B, C, H, W) in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DitkitError

__all__ = ["PooledImageEncoder", "ClipImageEncoder", "make_image_encoder"]

_CLIP_DEFAULT = "openai/clip-vit-base-patch32"
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class PooledImageEncoder:
    def __init__(self, grid: int = 4, channels: int = 3):
        if grid < 1:
            raise DitkitError("the pooled image encoder needs a grid of at least 1.")
        self.grid, self.channels, self.dim = int(grid), int(channels), int(channels) * int(grid) ** 2

    def to_config(self) -> dict:
        return {"spec": f"pooled:{self.grid}", "channels": self.channels, "dim": self.dim}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(images.float(), self.grid)  # (B, C, G, G)
        return pooled.flatten(1)[:, None]  # (B, 1, C·G·G)


class ClipImageEncoder:
    def __init__(self, source: str = _CLIP_DEFAULT, device="cpu"):
        from transformers import CLIPVisionModelWithProjection

        from .text import load_pretrained

        self.source = source
        self.model = load_pretrained(CLIPVisionModelWithProjection, source).eval().requires_grad_(False).to(device)
        self.size = self.model.config.image_size
        self.dim = self.model.config.projection_dim

    def to_config(self) -> dict:
        return {"spec": f"clip:{self.source}", "dim": self.dim}

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().to(next(self.model.parameters()).device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate((x + 1) / 2, size=(self.size, self.size), mode="bicubic", align_corners=False)  # (B,3,S,S)
        mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1) for v in (_CLIP_MEAN, _CLIP_STD))
        return self.model(pixel_values=(x - mean) / std).image_embeds[:, None]  # (B, 1, D)


def make_image_encoder(spec, *, channels: int = 3, device="cpu"):
    """``pooled:G`` or ``clip[:SOURCE]`` (or a stored ``to_config()`` dict)."""
    if isinstance(spec, dict):
        spec = spec.get("spec", "")
    kind, _, arg = str(spec).partition(":")
    if kind == "pooled":
        try:
            return PooledImageEncoder(int(arg or 4), channels)
        except ValueError:
            raise DitkitError(f"bad image encoder spec {spec!r}: pooled:G takes an integer grid") from None
    if kind == "clip":
        return ClipImageEncoder(arg or _CLIP_DEFAULT, device=device)
    raise DitkitError(f"unknown image encoder {spec!r}: use pooled:G or clip[:HUB_ID_OR_FOLDER]")
