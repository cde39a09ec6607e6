"""A weightless, instant text encoder: prompts as one-hot UTF-8 bytes (for tiny models and tests).

It has the ``TextCodec`` interface (``encode(prompts) → TextEncoding``, ``width``, ``max_length``,
``to_config``) with spec ``"chars"``: each of the first ``max_length`` bytes becomes a 256-d one-hot row, the
rest are zero padding. It is frozen by construction and loads in no time, so a model using it can be built,
saved and sampled in a unit test; the learned reduction after it (UniDiffuser's ``encode_prefix``) does the
rest. Real models use ``ditkit.codecs.text`` (MiniLM offline, CLIP on the hub).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DitkitError
from .text import TextEncoding

__all__ = ["CharTextCodec"]


class CharTextCodec:
    """One-hot bytes; the pooled vector is the mean of the real rows."""

    width = 256

    def __init__(self, max_length: int = 32, device="cpu"):
        if max_length < 1:
            raise DitkitError("the character text encoder needs max_length >= 1.")
        self.spec, self.kind, self.max_length, self.device = "chars", "chars", int(max_length), torch.device(device)

    def to_config(self) -> dict:
        return {"type": "text", "spec": "chars", "max_length": self.max_length, "width": self.width}

    def token_counts(self, prompts: list[str]) -> list[int]:
        """Each prompt's length in bytes (this encoder's tokens), before truncation."""
        return [len(str(p).encode("utf-8")) for p in prompts]

    def encode(self, prompts) -> TextEncoding:
        prompts = [prompts] if isinstance(prompts, str) else [str(p) for p in prompts]
        if not prompts:
            raise DitkitError("no prompts to encode")
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)  # (N, L)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)  # (N, L)
        for row, prompt in enumerate(prompts):
            data = list(prompt.encode("utf-8")[:self.max_length])
            ids[row, :len(data)] = torch.tensor(data, dtype=torch.long)
            mask[row, :len(data)] = True
        states = F.one_hot(ids, self.width).float() * mask[..., None]  # (N, L, 256)
        pooled = states.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # (N, 256)
        return TextEncoding(states.to(self.device), mask.to(self.device), pooled.to(self.device))
