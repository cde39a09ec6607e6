"""A text-conditioned DiT: block ``"cross-text"`` (PixArt-α's layout).

Each block is self-attention → cross-attention from the image tokens to the text tokens (with the
text's key-padding mask) → MLP; the timestep enters through adaLN-Zero on the self-attention and MLP
branches (γ, β, gates regressed from emb(t), zero-initialised), as in DiT. The text encoder's states are
projected to the model width once (the caption projection, an MLP as PixArt-α's). A learned null text
replaces the caption of rows whose mask is all False — the empty prompt, caption dropout in training
(``class_dropout_prob``), and the unconditional half of classifier-free guidance.

With ``text_pooled`` the pooled sentence vector also joins the timestep embedding, ``c = emb(t) +
MLP(pooled)``, so every block's adaLN-Zero modulation sees the whole prompt (Imagen and SD3 add pooled text
to the timestep embedding the same way; DiT's own ablation found adaLN-Zero the fastest-learning way to
condition). The null text has its own learned pooled vector.

``create_model(config)`` with ``block="cross-text"`` builds a ``TextDiT`` (``models.registry``) (``"joint-text"``: ``joint_text_dit.py``);
``model(x, t, y)`` takes ``y`` as a ``TextEncoding`` (states (N, L, text_dim), mask (N, L), pooled) from
``ditkit.codecs.text``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..codecs.text import TextEncoding
from ..errors import DitkitError
from .dit import AdaptiveFinalLayer, Attention, CrossAttention, DiT, DiTConfig, Mlp, modulate
from .embeddings import PatchEmbed, TimestepEmbedder, sincos_2d_position_embedding


class MaskedCrossAttention(CrossAttention):
    """Image tokens (N, T, D) attend to text tokens (N, L, D); padding keys (mask False) are ignored."""

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = x.shape
        h, hd = self.num_heads, d // self.num_heads
        q = self.q(x).reshape(n, t, h, hd).transpose(1, 2)  # (N, h, T, hd)
        k, v = self.kv(context).reshape(n, context.shape[1], 2, h, hd).permute(2, 0, 3, 1, 4)  # (N, h, L, hd)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (N, 1, 1, L), broadcast over heads/queries
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class CrossTextBlock(nn.Module):
    """adaLN-Zero self-attention and MLP around an (unmodulated, pre-norm) cross-attention to the text."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = MaskedCrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, bias=True))

    def forward(self, x, c, context, mask):
        # x (N, T, D) image tokens; c (N, D) = emb(t); context (N, L, D) projected text; mask (N, L) bool
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x = x + self.cross_attn(self.norm_cross(x), context, mask)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x, context  # every text block maps (x, c, context, mask) -> (x, context); this one keeps the text


class TextDiT(DiT):
    """(x_t, t, text) -> (N, out_channels, H, W); built by ``DiT(config)`` for ``block="cross-text"``.
    Other text blocks subclass it and override ``_build_blocks`` and ``_zero_init_blocks``; every block maps
    ``(x, c, context, mask)`` to ``(x, context)``."""

    # The pooled-text path starts as a no-op (zero last layer), so ``--init-from`` a model without it starts
    # as that model: a finetune may add it.
    finetune_addable = ("pooled_projection.", "null_pooled")

    def __init__(self, config: DiTConfig):
        nn.Module.__init__(self)  # DiT.__init__ builds label embedders and the paper's blocks: not ours
        self.config = config
        d = config.hidden_size
        self.gradient_checkpointing = False
        self.x_embedder = PatchEmbed(config.patch_size, config.in_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = None
        grid = config.input_size // config.patch_size
        self.register_buffer("pos_embed", sincos_2d_position_embedding(d, grid).unsqueeze(0), persistent=True)
        self.caption_projection = nn.Sequential(nn.Linear(config.text_dim, d), nn.GELU(approximate="tanh"),
                                                nn.Linear(d, d))
        self.null_text = nn.Parameter(torch.zeros(1, 1, d))  # the learned "no caption" token, in model width
        self.pooled_projection = None
        if config.text_pooled:
            self.pooled_projection = nn.Sequential(nn.Linear(config.text_dim, d), nn.SiLU(), nn.Linear(d, d))
            self.null_pooled = nn.Parameter(torch.zeros(1, d))
        self.blocks = self._build_blocks(config)
        self.final_layer = AdaptiveFinalLayer(d, config.patch_size, config.out_channels)
        self.initialize_weights()

    def _build_blocks(self, config: DiTConfig) -> nn.ModuleList:
        return nn.ModuleList(CrossTextBlock(config.hidden_size, config.num_heads, config.mlp_ratio)
                             for _ in range(config.depth))

    def _zero_init_blocks(self) -> None:
        for block in self.blocks:  # zero gates and cross-attention output: every block starts as the identity
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
            nn.init.zeros_(block.cross_attn.proj.weight)
            nn.init.zeros_(block.cross_attn.proj.bias)

    def initialize_weights(self) -> None:
        super().initialize_weights()  # xavier linears, N(0, .02) timestep MLP, zero final layer
        nn.init.normal_(self.null_text, std=0.02)
        self._zero_init_blocks()
        if self.pooled_projection is not None:  # starts as the model without it: c = emb(t)
            nn.init.zeros_(self.pooled_projection[-1].weight)
            nn.init.zeros_(self.pooled_projection[-1].bias)

    @property
    def null_class(self) -> None:
        return None  # no labels: guidance uses the null text (pipelines.text)

    def text_context(self, text: TextEncoding, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected text tokens (N, L, D), key mask (N, L), and which rows are the null text (N,) — after
        caption dropout; null rows get the learned null token."""
        states, mask = text.states, text.mask.bool()
        if states.ndim != 3 or states.shape[-1] != self.config.text_dim:
            raise DitkitError(f"this text model takes {self.config.text_dim}-wide text states (its text encoder's), "
                              f"got shape {tuple(states.shape)}")
        if self.training and self.config.class_dropout_prob > 0:  # caption dropout for classifier-free guidance
            drop = torch.rand(mask.shape[0], device=mask.device) < self.config.class_dropout_prob
            mask = mask & ~drop[:, None]
        context = self.caption_projection(states.to(dtype))
        null = ~mask.any(dim=1)  # (N,) rows with no real token: the null text
        context = torch.where(null[:, None, None], self.null_text.to(dtype), context)
        first = torch.zeros_like(mask)
        first[:, 0] = True
        return context, torch.where(null[:, None], first, mask), null  # a null row attends to its null token

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: TextEncoding | None = None) -> torch.Tensor:
        if not isinstance(y, TextEncoding):
            raise DitkitError("this is a text model: condition it on encoded text (the empty prompt for none), "
                              "not on class labels")
        if x.shape[-1] != self.config.input_size or x.shape[-2] != self.config.input_size:
            raise DitkitError(f"model expects {self.config.input_size}x{self.config.input_size} inputs, got "
                              f"{x.shape[-2]}x{x.shape[-1]}")
        tokens = self.x_embedder(x) + self.pos_embed.to(x.dtype)  # (N, T, D)
        c = self.t_embedder(t)  # (N, D)
        context, mask, null = self.text_context(y, tokens.dtype)  # (N, L, D), (N, L), (N,)
        if self.pooled_projection is not None:
            pooled = self.pooled_projection(y.pooled.to(c.dtype))  # (N, D)
            c = c + torch.where(null[:, None], self.null_pooled.to(c.dtype), pooled)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                tokens, context = checkpoint(block, tokens, c, context, mask, use_reentrant=False)
            else:
                tokens, context = block(tokens, c, context, mask)  # (N, T, D), (N, L, D)
        return self.unpatchify(self.final_layer(tokens, c))


def example_text(config: DiTConfig, batch: int = 1, device=None) -> TextEncoding:
    """A full-length text batch of the model's shape (all tokens real): for Gflops and smoke tests."""
    states = torch.zeros(batch, config.text_len, config.text_dim, device=device)
    mask = torch.ones(batch, config.text_len, dtype=torch.bool, device=device)
    return TextEncoding(states, mask, torch.zeros(batch, config.text_dim, device=device))
