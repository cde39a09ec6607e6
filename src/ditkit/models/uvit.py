"""U-ViT as UniDiffuser v1 uses it: one transformer that denoises an image latent, a CLIP image
embedding and 77 text tokens at once, each modality with its own timestep.

Sections: config (+ inference from a state dict's shapes) · embeddings · blocks · the network ·
loading and complexity. Parameter names are the official ones (``uvit_multi_post_ln_v1``), so the
released ``uvit_v1.pth`` state dict loads as it is. The token sequence is

    [t_img, t_text, data_type, text × T, clip_img × 1, image patches × (H/p · W/p)]

and the network returns one noise prediction per modality: (img (B,C,H,W), clip_img (B,1,Dc), text (B,T,Dt)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import DitkitError
from .dit import patch_and_head_problems

__all__ = ["UViTConfig", "UViT", "UVIT_V1", "infer_uvit_config", "load_uvit_state_dict", "timestep_embedding",
           "uvit_flops", "uvit_param_count"]

# Tokens before the text: t_img, t_text (pos_embed covers them); data_type has its own pos_embed_token.
_TIME_TOKENS = 2


@dataclass
class UViTConfig:
    """The official ``UViT(**nnet)`` arguments that change the network (dropouts are 0 in v1 and omitted)."""

    img_size: int = 64  # latent side the learned positions are made for (other square sizes are resized)
    in_chans: int = 4
    patch_size: int = 2
    embed_dim: int = 1536
    depth: int = 30  # in-blocks + mid-block + out-blocks = depth//2 + 1 + depth//2
    num_heads: int = 24
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    text_dim: int = 64
    num_text_tokens: int = 77
    clip_img_dim: int = 512

    def __post_init__(self):
        problems = patch_and_head_problems(self.img_size, self.patch_size, self.embed_dim, self.num_heads)
        if self.embed_dim % 2:
            problems.append(f"embed_dim {self.embed_dim} must be even (sinusoidal time tokens)")
        if self.depth < 1 or self.depth % 2:
            problems.append(f"depth {self.depth} must be a positive even number (in/out blocks pair up)")
        if min(self.in_chans, self.text_dim, self.num_text_tokens, self.clip_img_dim) < 1:
            problems.append("in_chans, text_dim, num_text_tokens and clip_img_dim must be >= 1")
        if problems:
            raise DitkitError("invalid U-ViT config: " + "; ".join(problems))

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def num_tokens(self) -> int:
        """Sequence length at the default latent size (data_type included): 1105 for v1."""
        return _TIME_TOKENS + 1 + self.num_text_tokens + 1 + self.num_patches

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UViTConfig":
        """Our config dict, or the official ``nnet`` dict (its extra keys — name, dropouts of 0, ... — checked)."""
        data = dict(data)
        official_only = {"name", "pos_drop_rate", "drop_rate", "attn_drop_rate", "use_checkpoint", "mlp_time_embed"}
        if data.pop("mlp_time_embed", False):
            raise DitkitError("U-ViT with mlp_time_embed=True is not supported (UniDiffuser v1 uses raw sinusoids).")
        for key in ("pos_drop_rate", "drop_rate", "attn_drop_rate"):
            if data.pop(key, 0.0):
                raise DitkitError(f"U-ViT {key} must be 0 (as in UniDiffuser v1).")
        for key in official_only:
            data.pop(key, None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DitkitError(f"unknown U-ViT config keys: {', '.join(unknown)}")
        return cls(**data)


# The released UniDiffuser v1 network (configs/sample_unidiffuser_v1.py): 952,509,520 parameters.
UVIT_V1 = UViTConfig()


# --------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps (int or float) → (B, dim) = [cos(t·f), sin(t·f)], f_k = exp(-ln(P)·k/(dim/2)); cos first."""
    half = dim // 2
    exponents = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half  # (half,)
    # float32 exp differs by an ulp between CPU kernels, which at t ≈ 1000 moves the token by ~2e-5; exp in
    # float64 rounded once is correctly rounded everywhere (and matches the official fixtures more closely).
    freqs = torch.exp(exponents.double()).float()  # (half,)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (B, dim)


class PatchEmbed(nn.Module):
    """Non-overlapping p×p patches → tokens, row-major over (h, w)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B,C,H,W) → (B,D,h,w) → (B, h·w, D)


# --------------------------------------------------------------------------------------------
# Blocks (post-LayerNorm)
# --------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Self-attention; qkv split as (3, heads, head_dim) along the features, SDPA with scale head_dim^-0.5."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads)  # (B, L, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, H, L, Dh)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, Dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, L, D)


class Mlp(nn.Module):
    """fc1 → exact (erf) GELU → fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # (B, L, D) → (B, L, 4D) → (B, L, D)


class Block(nn.Module):
    """Post-LN block; an out-block first fuses its long skip: x = norm1(skip_linear([x, skip]))."""

    def __init__(self, config: UViTConfig, skip: bool):
        super().__init__()
        dim = config.embed_dim
        if skip:  # created first so the parameter order matches the official module
            self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = Attention(dim, config.num_heads, config.qkv_bias)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio))
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            x = self.norm1(self.skip_linear(torch.cat([x, skip], dim=-1)))  # (B, L, 2D) → (B, L, D)
        x = self.norm2(x + self.attn(x))  # (B, L, D)
        return self.norm3(x + self.mlp(x))  # (B, L, D)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class UViT(nn.Module):
    """UniDiffuser's multi-modal U-ViT (v1: post-LN, raw sinusoidal time tokens, a data-type token)."""

    def __init__(self, config: UViTConfig | Mapping[str, Any] | None = None, **overrides):
        super().__init__()
        if config is None:
            config = UViTConfig(**overrides)
        elif not isinstance(config, UViTConfig) or overrides:
            base = config.to_dict() if isinstance(config, UViTConfig) else dict(config)
            config = UViTConfig.from_dict({**base, **overrides})
        self.config = c = config
        self.gradient_checkpointing = False
        self.patch_embed = PatchEmbed(c.patch_size, c.in_chans, c.embed_dim)
        self.text_embed = nn.Linear(c.text_dim, c.embed_dim)
        self.text_out = nn.Linear(c.embed_dim, c.text_dim)
        self.clip_img_embed = nn.Linear(c.clip_img_dim, c.embed_dim)
        self.clip_img_out = nn.Linear(c.embed_dim, c.clip_img_dim)
        self.token_embedding = nn.Embedding(2, c.embed_dim)  # data_type ∈ {0, 1}
        # Positions of every token but data_type, which has its own (zero-init) entry.
        self.pos_embed = nn.Parameter(torch.zeros(1, c.num_tokens - 1, c.embed_dim))
        self.pos_embed_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.in_blocks = nn.ModuleList([Block(c, skip=False) for _ in range(c.depth // 2)])
        self.mid_block = Block(c, skip=False)
        self.out_blocks = nn.ModuleList([Block(c, skip=True) for _ in range(c.depth // 2)])
        self.norm = nn.LayerNorm(c.embed_dim)
        self.decoder_pred = nn.Linear(c.embed_dim, c.patch_size**2 * c.in_chans)
        self._init_weights()

    def _init_weights(self) -> None:
        """Trunc-normal(0.02) linears and positions, zero biases, unit LayerNorms (U-ViT's init)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    # ---- positions --------------------------------------------------------------------------

    def positions(self, grid: int) -> torch.Tensor:
        """(1, L, D) position table for a grid×grid patch layout; the patch part resized bilinearly if needed."""
        c = self.config
        head = c.num_tokens - 1 - c.num_patches  # t_img, t_text, text ×T, clip_img
        fixed, patches = self.pos_embed[:, :head], self.pos_embed[:, head:]  # (1, head, D), (1, P, D)
        if grid != c.grid:
            table = patches.reshape(1, c.grid, c.grid, -1).permute(0, 3, 1, 2)  # (1, D, g, g)
            table = F.interpolate(table, size=(grid, grid), mode="bilinear", align_corners=False)  # (1, D, G, G)
            patches = table.flatten(2).transpose(1, 2)  # (1, G·G, D)
        return torch.cat([fixed[:, :_TIME_TOKENS], self.pos_embed_token, fixed[:, _TIME_TOKENS:], patches], dim=1)

    # ---- forward ----------------------------------------------------------------------------

    def embed(self, img, clip_img, text, t_img, t_text, data_type) -> torch.Tensor:
        """Inputs → the (B, L, D) token sequence, positions added (the input of the first in-block)."""
        c = self.config
        b, _, h, w = img.shape
        if h != w or h % c.patch_size:
            raise DitkitError(f"the U-ViT needs a square latent whose side divides by {c.patch_size}, got {h}x{w}.")
        d = c.embed_dim
        tokens = torch.cat([
            timestep_embedding(t_img, d).unsqueeze(1),  # (B, 1, D)
            timestep_embedding(t_text, d).unsqueeze(1),  # (B, 1, D)
            self.token_embedding(data_type.long()).unsqueeze(1),  # (B, 1, D)
            self.text_embed(text),  # (B, T, D)
            self.clip_img_embed(clip_img),  # (B, 1, D)
            self.patch_embed(img),  # (B, P, D)
        ], dim=1)  # (B, L, D)
        return tokens + self.positions(h // c.patch_size)  # (B, L, D)

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        """In-blocks, mid-block, out-blocks with long skips (last in, first out), then the final norm."""
        skips = []
        for block in self.in_blocks:
            x = self._run(block, x)  # (B, L, D)
            skips.append(x)
        x = self._run(self.mid_block, x)  # (B, L, D)
        for block in self.out_blocks:
            x = self._run(block, x, skips.pop())  # (B, L, D)
        return self.norm(x)  # (B, L, D)

    def _run(self, block: Block, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.gradient_checkpointing and self.training:
            return checkpoint(block, x, skip, use_reentrant=False)
        return block(x, skip)

    def heads(self, x: torch.Tensor, grid: int):
        """(B, L, D) final tokens → (img (B,C,H,W), clip_img (B,1,Dc), text (B,T,Dt)); the 3 control tokens dropped."""
        c = self.config
        start = _TIME_TOKENS + 1
        text = self.text_out(x[:, start:start + c.num_text_tokens])  # (B, T, Dt)
        clip_img = self.clip_img_out(x[:, start + c.num_text_tokens:start + c.num_text_tokens + 1])  # (B, 1, Dc)
        patches = self.decoder_pred(x[:, start + c.num_text_tokens + 1:])  # (B, G·G, p·p·C)
        p, ch = c.patch_size, c.in_chans
        img = patches.reshape(-1, grid, grid, p, p, ch)  # (B, G, G, p, p, C): channel innermost
        img = img.permute(0, 5, 1, 3, 2, 4).reshape(-1, ch, grid * p, grid * p)  # (B, C, G·p, G·p)
        return img, clip_img, text

    def forward(self, img, clip_img, text, t_img, t_text, data_type):
        """img (B,C,H,W), clip_img (B,1,Dc), text (B,T,Dt), t_img/t_text (B,) (0 clean … 1000 pure noise),
        data_type (B,) in {0,1} → the three noise predictions, shaped as the inputs."""
        x = self.embed(img, clip_img, text, t_img, t_text, data_type)  # (B, L, D)
        x = self.blocks(x)  # (B, L, D)
        return self.heads(x, img.shape[-1] // self.config.patch_size)  # (B,C,H,W), (B,1,Dc), (B,T,Dt)


# --------------------------------------------------------------------------------------------
# Loading: the config from a state dict's shapes; strict, readable shape checks
# --------------------------------------------------------------------------------------------


def _shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise DitkitError(f"this is not a UniDiffuser U-ViT state dict: it has no {key!r}.")
    return tuple(state_dict[key].shape)


def infer_uvit_config(state_dict: Mapping[str, torch.Tensor], *, num_heads: int | None = None,
                      num_text_tokens: int = 77) -> UViTConfig:
    """The U-ViT config that a state dict's shapes imply.

    Shapes do not tell the number of heads: it defaults to ``embed_dim // 64`` (v1's head width, 24 heads for
    1536) unless given. The text length cannot be told apart from the patch count either; the official
    sampler hard-codes 77.
    """
    out_ch, in_chans, patch, _ = _shape(state_dict, "patch_embed.proj.weight")
    embed_dim = out_ch
    num_patches = _shape(state_dict, "pos_embed")[1] - _TIME_TOKENS - num_text_tokens - 1
    grid = math.isqrt(max(num_patches, 0))
    if num_patches < 1 or grid * grid != num_patches:
        raise DitkitError(f"the U-ViT state dict's pos_embed does not fit {num_text_tokens} text tokens and a "
                          "square patch grid.")
    n_in = len({k.split(".")[1] for k in state_dict if k.startswith("in_blocks.")})
    hidden = _shape(state_dict, "in_blocks.0.mlp.fc1.weight")[0] if n_in else 4 * embed_dim
    if num_heads is None:
        num_heads = max(1, embed_dim // 64)
    return UViTConfig(
        img_size=grid * patch, in_chans=in_chans, patch_size=patch, embed_dim=embed_dim, depth=2 * n_in,
        num_heads=num_heads, mlp_ratio=hidden / embed_dim, qkv_bias="in_blocks.0.attn.qkv.bias" in state_dict,
        text_dim=_shape(state_dict, "text_embed.weight")[1], num_text_tokens=num_text_tokens,
        clip_img_dim=_shape(state_dict, "clip_img_embed.weight")[1],
    )


def load_uvit_state_dict(model: UViT, state_dict: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> UViT:
    """Load strictly; any missing, unexpected or mis-shaped tensor is one DitkitError naming a few of them."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {expected[k]}" for k in expected
             if k in state_dict and tuple(state_dict[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        parts = [f"{name}: {', '.join(items[:3])}{' …' if len(items) > 3 else ''}"
                 for name, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
        raise DitkitError(f"{source} does not fit a U-ViT with {model.config.to_dict()} ({'; '.join(parts)}).")
    model.load_state_dict(dict(state_dict), strict=True)
    return model


# --------------------------------------------------------------------------------------------
# Complexity
# --------------------------------------------------------------------------------------------


def uvit_param_count(config: UViTConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in UViT(config).state_dict().values())


def uvit_flops(config: UViTConfig, latent_size: int | None = None) -> float:
    """Forward multiply-accumulates for one sample (all three modalities), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    c = config
    side = latent_size or c.img_size
    with torch.device("meta"):
        model = UViT(c).eval()
        inputs = (torch.empty(1, c.in_chans, side, side), torch.empty(1, 1, c.clip_img_dim),
                  torch.empty(1, c.num_text_tokens, c.text_dim), torch.zeros(1), torch.zeros(1),
                  torch.ones(1, dtype=torch.long))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() / 2  # the counter reports 2 FLOPs per multiply-add
