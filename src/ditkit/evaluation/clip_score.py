"""CLIP score of text-to-image samples: how well each image matches its prompt, by a CLIP model.

``clip_scores(images, prompts)`` = 100 · max(cos(image embedding, text embedding), 0) per sample (the
convention of torchmetrics' ``CLIPScore``; Hessel et al. 2021 scale the same cosine by 2.5). The CLIP
model comes from the hub (``openai/clip-vit-large-patch14`` by default) or a local folder; offline
without a cached copy it is one clear error.
"""

from __future__ import annotations

import numpy as np
import torch

from ..codecs.text import load_pretrained
from ..errors import DitkitError

DEFAULT_CLIP = "openai/clip-vit-large-patch14"


class ClipScorer:
    """A frozen CLIP (text and image towers) with its processor."""

    def __init__(self, source: str = DEFAULT_CLIP, device="cpu"):
        import transformers

        transformers.utils.logging.disable_progress_bar()
        self.processor = load_pretrained(transformers.CLIPProcessor, source)
        self.model = load_pretrained(transformers.CLIPModel, source).eval().requires_grad_(False).to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, prompts: list[str], batch_size: int = 64) -> torch.Tensor:
        """uint8 images (N, H, W, C) and N prompts → (N,) scores in [0, 100]."""
        if len(images) != len(prompts):
            raise DitkitError(f"{len(images)} images for {len(prompts)} prompts")
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DitkitError(f"expected uint8 images (N, H, W, 1 or 3), got shape {images.shape}")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        scores = []
        for start in range(0, len(images), batch_size):
            batch = self.processor(text=list(prompts[start:start + batch_size]), images=list(images[start:start + batch_size]),
                                   return_tensors="pt", padding=True, truncation=True).to(self.device)
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             pixel_values=batch["pixel_values"])
            image = torch.nn.functional.normalize(out.image_embeds, dim=-1)  # (B, projection_dim)
            text = torch.nn.functional.normalize(out.text_embeds, dim=-1)
            scores.append(100 * (image * text).sum(-1).clamp(min=0).cpu())
        return torch.cat(scores)


def clip_scores(images: np.ndarray, prompts: list[str], source: str = DEFAULT_CLIP, device="cpu") -> torch.Tensor:
    return ClipScorer(source, device)(images, prompts)
