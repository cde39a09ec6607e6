"""A text-conditioned DiT with joint attention: block ``"joint-text"`` (SD3's MM-DiT layout).

The text is a second token stream with its own weights. In each block both streams are normalised and
modulated by adaLN-Zero from ``c`` (= emb(t), plus the pooled text with ``text_pooled``), project to
queries, keys and values with their own linears, and attend **jointly** over the concatenation
[text; image] (text padding masked as keys); each stream then has its own output projection, gated residual
and MLP. Unlike cross-attention, where an image token reads the frozen encoder states through one
attention, the text tokens here also attend to each other and to the image in every block, so a word's
representation can take in the words around it ("red" in "a red circle left of a blue square" can come to
mean "red is on the left") before the image reads it. Esser et al. (2024, "Scaling Rectified Flow
Transformers") found this layout ahead of cross-attention, U-ViT and DiT-style blocks at equal compute.

As in SD3, the last block keeps only the text's keys and values (nothing reads its text output), so every
parameter gets a gradient. Every block starts as the identity for both streams (zero gates), as in DiT.
Caption projection, null text, caption dropout and the pooled path are ``TextDiT``'s (``models/text_dit.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dit import DiTConfig, Mlp, modulate
from .text_dit import TextDiT


class _Stream(nn.Module):
    """One modality's half of a joint block: adaLN-Zero modulation, q/k/v in, and (unless ``pre_only``)
    the attention output projection and the MLP."""

    def __init__(self, dim: int, mlp_ratio: float, pre_only: bool):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        chunks = 2 if pre_only else 6  # shift/scale for the attention input; gates and the MLP's unless pre_only
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, chunks * dim, bias=True))
        if not pre_only:
            self.proj = nn.Linear(dim, dim, bias=True)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def qkv_and_modulation(self, x: torch.Tensor, c: torch.Tensor):
        mod = self.adaLN_modulation(c).chunk(2 if self.pre_only else 6, dim=1)  # each (N, D)
        return self.qkv(modulate(self.norm1(x), mod[0], mod[1])), mod  # (N, S, 3D)

    def finish(self, x: torch.Tensor, attended: torch.Tensor, mod) -> torch.Tensor:
        _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        x = x + gate_msa.unsqueeze(1) * self.proj(attended)  # (N, S, D)
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class JointTextBlock(nn.Module):
    """Text and image streams with their own weights and one attention over both."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, last: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.image = _Stream(dim, mlp_ratio, pre_only=False)
        self.text = _Stream(dim, mlp_ratio, pre_only=last)

    def forward(self, x, c, context, mask):
        # x (N, T, D) image tokens; c (N, D); context (N, L, D) text tokens; mask (N, L) bool, True = real token
        n, t, d = x.shape
        length, h = context.shape[1], self.num_heads
        qkv_x, mod_x = self.image.qkv_and_modulation(x, c)  # (N, T, 3D)
        qkv_c, mod_c = self.text.qkv_and_modulation(context, c)  # (N, L, 3D)
        qkv = torch.cat([qkv_c, qkv_x], dim=1)  # (N, L+T, 3D): text first, as SD3
        q, k, v = qkv.reshape(n, length + t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each (N, h, L+T, hd)
        keys = torch.cat([mask, mask.new_ones(n, t)], dim=1)[:, None, None, :]  # (N, 1, 1, L+T)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # (N, h, L+T, hd)
        out = out.transpose(1, 2).reshape(n, length + t, d)  # (N, L+T, D)
        x = self.image.finish(x, out[:, length:], mod_x)  # (N, T, D)
        if self.text.pre_only:
            return x, context
        return x, self.text.finish(context, out[:, :length], mod_c)  # (N, T, D), (N, L, D)


class JointTextDiT(TextDiT):
    """(x_t, t, text) -> (N, out_channels, H, W); built by ``DiT(config)`` for ``block="joint-text"``."""

    def _build_blocks(self, config: DiTConfig) -> nn.ModuleList:
        return nn.ModuleList(JointTextBlock(config.hidden_size, config.num_heads, config.mlp_ratio,
                                            last=i == config.depth - 1) for i in range(config.depth))

    def _zero_init_blocks(self) -> None:
        for block in self.blocks:  # zero gates: both streams start as the identity
            for stream in (block.image, block.text):
                nn.init.zeros_(stream.adaLN_modulation[-1].weight)
                nn.init.zeros_(stream.adaLN_modulation[-1].bias)
