"""The Diffusion Transformer (Peebles & Xie, 2022) with the paper's four conditioning blocks.

Sections: config and presets · attention / MLP · the four block designs · final layers · DiT ·
``create_model``. The ``adaln-zero`` model's parameter names and numerics match the official
``models.py``, so official checkpoints load as they are.

Architecture options (``DiTConfig.mlp``, ``norm``, ``qk_norm``, ``rope``, ``long_skips``; the defaults are the
paper's layers, bit for bit, with the same state-dict keys): a SwiGLU MLP, RMSNorm for every norm, RMSNorm
over each head's queries and keys, 2-D rotary positions in place of the sin-cos table, and U-ViT long skips.
The blocks take the per-layer ones as ``LayerOptions``; RoPE tables reach them at forward time; the skips
live in ``DiT`` itself, between blocks. Text blocks refuse them (``DiTConfig`` says so).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import DitkitError
from .embeddings import (LabelEmbedder, PatchEmbed, TimestepEmbedder, apply_rotary, rotary_2d_tables,
                         sincos_2d_position_embedding)
from .registry import BLOCKS, MLPS, MODEL_CLASSES, MODEL_PRESETS, MODEL_SIZES, NORMS, TEXT_BLOCKS

ARCHITECTURE_OPTIONS = ("mlp", "norm", "qk_norm", "rope", "long_skips")  # DiTConfig fields; defaults = the paper

# --------------------------------------------------------------------------------------------
# Config and the paper's model sizes
# --------------------------------------------------------------------------------------------


def patch_and_head_problems(size: int, patch: int, width: int, heads: int) -> list[str]:
    """What makes a ViT's grid or heads impossible: patches must tile the input, heads must split the width."""
    problems = []
    if patch < 1 or size % patch:
        problems.append(f"input size {size} is not divisible by patch size {patch}")
    if heads < 1 or width % heads:
        problems.append(f"width {width} is not divisible by {heads} heads")
    return problems


@dataclass
class DiTConfig:
    """Everything needed to rebuild a DiT; serialized as JSON beside the weights."""

    input_size: int = 32  # spatial size of the model input (latent or pixel grid)
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int = 1000  # 0 = unconditional
    class_dropout_prob: float = 0.1
    learn_sigma: bool = True
    block: str = "adaln-zero"
    text_dim: int = 0  # text models (a TEXT_BLOCKS block): the text encoder's state width ...
    text_len: int = 0  # ... and its token count (0 for label models)
    text_pooled: bool = False  # text models: also add the pooled text vector to emb(t), the adaLN input
    # Architecture options (label models; the defaults are the paper's DiT):
    mlp: str = "gelu"  # "swiglu": SwiGLU MLP, hidden width 2/3 of the GELU MLP's, rounded up to a multiple of 8
    norm: str = "layernorm"  # "rmsnorm": every norm of the blocks and the final layer is an RMSNorm
    qk_norm: bool = False  # RMSNorm (learned scale) over each head's queries and keys before attention
    rope: bool = False  # 2-D rotary positions on self-attention's q and k, replacing the sin-cos pos_embed
    long_skips: bool = False  # U-ViT long skips: block i's output joins block depth-1-i's input (a Linear(2D, D))

    def __post_init__(self):
        problems = []
        text_blocks = " or ".join(f"'{b}'" for b in TEXT_BLOCKS)
        if (self.block in TEXT_BLOCKS) != (self.text_dim > 0) or (self.text_dim > 0) != (self.text_len > 0):
            problems.append(f"a text block ({text_blocks}), and only a text block, takes text: text_dim and "
                            f"text_len > 0")
        if self.text_pooled and not self.text_dim:
            problems.append(f"text_pooled needs a text model (block {text_blocks})")
        if self.text_dim > 0 and self.num_classes:
            problems.append("a text model has no class labels: num_classes must be 0")
        if self.block not in MODEL_CLASSES:
            problems.append(f"block must be one of {', '.join(MODEL_CLASSES)}, got {self.block!r}")
        problems += patch_and_head_problems(self.input_size, self.patch_size, self.hidden_size, self.num_heads)
        if self.hidden_size % 4:
            problems.append(f"hidden size {self.hidden_size} must be divisible by 4 (2-D sin-cos positions)")
        if self.num_classes < 0 or self.depth < 1 or self.in_channels < 1:
            problems.append("num_classes must be >= 0, depth and in_channels >= 1")
        if not 0.0 <= self.class_dropout_prob < 1.0:
            problems.append(f"class_dropout_prob must be in [0, 1), got {self.class_dropout_prob}")
        problems += self._option_problems()
        if problems:
            raise DitkitError("invalid DiT config: " + "; ".join(problems))

    def _option_problems(self) -> list[str]:
        problems = []
        if self.mlp not in MLPS:
            problems.append(f"mlp must be one of {', '.join(MLPS)}, got {self.mlp!r}")
        if self.norm not in NORMS:
            problems.append(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.rope and self.num_heads > 0 and (self.hidden_size // self.num_heads) % 4:
            problems.append(f"rope needs a head width (hidden size / heads) divisible by 4, got "
                            f"{self.hidden_size // self.num_heads}")
        if self.long_skips and self.depth < 2:
            problems.append("long_skips needs a depth of at least 2")
        changed = self.changed_options()
        if self.block in TEXT_BLOCKS and changed:  # their blocks are built elsewhere and do not take them yet
            problems.append(f"text blocks ({', '.join(TEXT_BLOCKS)}) take no architecture options yet, got "
                            f"{', '.join(changed)}")
        return problems

    def changed_options(self) -> list[str]:
        """The architecture options set away from the paper's defaults, as "name=value"."""
        defaults = {f.name: f.default for f in fields(self)}
        return [f"{n}={getattr(self, n)}" for n in ARCHITECTURE_OPTIONS if getattr(self, n) != defaults[n]]

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def num_patches(self) -> int:
        return (self.input_size // self.patch_size) ** 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiTConfig":
        """Keys a config lacks (checkpoints older than a field) take the field's default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DitkitError(f"unknown DiT config keys: {', '.join(unknown)}")
        return cls(**data)


# The paper's sizes (MODEL_SIZES, MODEL_PRESETS) live in the registry; the patch size comes from the name's suffix.
_NAME = re.compile(r"^DiT-(S|B|L|XL)[/-](\d+)$", re.IGNORECASE)


def preset_config(name: str) -> dict[str, Any]:
    """'DiT-XL/2' (or 'dit-xl-2') -> dict of depth/hidden_size/num_heads/patch_size."""
    match = _NAME.match(name.strip())
    if not match:
        raise DitkitError(f"unknown model name {name!r}; expected one of {', '.join(MODEL_PRESETS)}")
    size, patch = match.group(1).upper(), int(match.group(2))
    return dict(MODEL_SIZES[size], patch_size=patch)


# --------------------------------------------------------------------------------------------
# Attention, MLP and norms (timm layout: attn.qkv / attn.proj, mlp.fc1 / mlp.fc2)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerOptions:
    """The per-layer architecture options a block's constructor takes; the defaults build the paper's layers."""

    mlp: str = "gelu"
    norm: str = "layernorm"
    qk_norm: bool = False

    @classmethod
    def of(cls, config: DiTConfig) -> "LayerOptions":
        return cls(mlp=config.mlp, norm=config.norm, qk_norm=config.qk_norm)


PAPER_LAYERS = LayerOptions()


def make_norm(kind: str, dim: int, affine: bool = False) -> nn.Module:
    """A LayerNorm or an RMSNorm (eps 1e-6, as the paper's norms); ``affine``: learned scale (and LayerNorm's
    bias). RMSNorm drops the mean subtraction and the bias: one reduction instead of two (LightningDiT)."""
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=1e-6, elementwise_affine=affine)
    return nn.LayerNorm(dim, eps=1e-6, elementwise_affine=affine)


class QKNorm(nn.Module):
    """RMSNorm with a learned scale over each head's queries and keys (SD3, LightningDiT): bounds the attention
    logits, which otherwise grow with the weights and saturate the softmax."""

    def __init__(self, head_dim: int):
        super().__init__()
        self.q = make_norm("rmsnorm", head_dim, affine=True)
        self.k = make_norm("rmsnorm", head_dim, affine=True)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._normed(self.q, q), self._normed(self.k, k)

    @staticmethod
    def _normed(norm: nn.RMSNorm, x: torch.Tensor) -> torch.Tensor:
        # The scale in x's dtype: under bf16 autocast an fp32 scale would miss torch's fused kernel and
        # promote q, k to fp32 while v stays bf16.
        return F.rms_norm(x, norm.normalized_shape, norm.weight.to(x.dtype), norm.eps)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d) v over (N, H, T, d) heads.

    torch's fused ``scaled_dot_product_attention`` everywhere except bf16 on CPU, where its flash kernel
    took 2.2× the CPU time of three plain ops for DiT-S/2's shapes (47 vs 22 ms forward + backward, torch
    2.13, AVX512-BF16; benchmarks/attention.py): the plain ops hand the work to oneDNN's bf16 matmuls. The scale folds into q (one pass over T×d, not T×T).
    """
    if q.dtype != torch.bfloat16 or q.device.type != "cpu" or not ATTENTION_MATH_ON_CPU_BF16:
        return F.scaled_dot_product_attention(q, k, v)
    q = q * q.shape[-1] ** -0.5
    return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v


ATTENTION_MATH_ON_CPU_BF16 = True  # benchmarks flip it to measure the fused kernel instead


class Attention(nn.Module):
    """Multi-head self-attention (``attention``: torch's fused kernel, or plain ops where faster); optionally
    QK-norm, and 2-D RoPE when the forward is given ``rope`` = (cos, sin) tables (``rotary_2d_tables``)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        self.qk_norm = QKNorm(dim // num_heads) if qk_norm else None  # None adds no state-dict keys

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)
        if rope is not None:  # after the norm, as LightningDiT: the rotation keeps the norm's scale
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class CrossAttention(nn.Module):
    """Image tokens attend to the conditioning sequence [emb(t), emb(y)]."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=True)
        self.kv = nn.Linear(dim, dim * 2, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)
        self.qk_norm = QKNorm(dim // num_heads) if qk_norm else None  # no RoPE: the context has no grid

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h, hd = self.num_heads, d // self.num_heads
        q = self.q(x).reshape(n, t, h, hd).transpose(1, 2)
        k, v = self.kv(context).reshape(n, context.shape[1], 2, h, hd).permute(2, 0, 3, 1, 4)
        if self.qk_norm is not None:
            q, k = self.qk_norm(q, k)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class TanhGelu(nn.Module):
    """GELU, tanh approximation: x·½(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), as the official DiT.

    Where torch.compile builds bf16 code for the CPU, it is written as the identical x·σ(2u): inductor
    vectorises σ through exp, which costs half of its vectorised tanh (DiT-S/2 MLP, (8, 256, 1536) bf16,
    forward + backward 4.5 vs 8.8 ms). In fp32 the two forms differ by float rounding, ~1e-7; once rounded
    to bf16, outputs agree bit for bit on all but ~0.01% of elements, which move by one bf16 step. fp32,
    eager and GPU code keep ATen's kernel (fp32 parity stays bit for bit).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16 and x.device.type == "cpu" and torch.compiler.is_compiling():
            x32 = x.float()
            return (x32 * torch.sigmoid(1.5957691216057308 * (x32 + 0.044715 * x32 * x32 * x32))).to(x.dtype)
        return F.gelu(x, approximate="tanh")


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = TanhGelu()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def swiglu_width(gelu_hidden: int) -> int:
    """2/3 of the GELU MLP's hidden width, rounded up to a multiple of 8 (LightningDiT): three matrices of
    this width hold about the parameters and MACs of the GELU MLP's two."""
    return (int(gelu_hidden * 2 / 3) + 7) // 8 * 8


class SwiGLU(nn.Module):
    """SwiGLU (Shazeer 2020): w3(silu(a) * b) with [a | b] = w12(x), LightningDiT's layout and names."""

    def __init__(self, dim: int, gelu_hidden: int):
        super().__init__()
        hidden = swiglu_width(gelu_hidden)
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


def make_mlp(kind: str, dim: int, mlp_ratio: float) -> nn.Module:
    """The block's MLP: the paper's tanh-GELU ``Mlp`` of width mlp_ratio·dim, or a ``SwiGLU`` of about its size."""
    hidden = int(dim * mlp_ratio)
    return SwiGLU(dim, hidden) if kind == "swiglu" else Mlp(dim, hidden)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


# --------------------------------------------------------------------------------------------
# The four block designs. Each takes (tokens, c, context, rope): c = emb(t) + emb(y) (N, D);
# context = the conditioning tokens (N, 1 or 2, D), used only by cross-attention; rope = the RoPE
# tables of the token sequence or None. Constructors take (dim, num_heads, mlp_ratio, LayerOptions).
# --------------------------------------------------------------------------------------------


class _ModulatedBlock(nn.Module):
    """Attention and MLP behind affine-free norms, with a regressor from c to ``chunks`` modulations."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, chunks: int, options: LayerOptions):
        super().__init__()
        self.norm1 = make_norm(options.norm, dim)
        self.attn = Attention(dim, num_heads, options.qk_norm)
        self.norm2 = make_norm(options.norm, dim)
        self.mlp = make_mlp(options.mlp, dim, mlp_ratio)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, chunks * dim, bias=True))


class AdaLNZeroBlock(_ModulatedBlock):
    """adaLN-Zero: γ, β and gates α regressed from c; zero-init regressor -> identity at start."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, options: LayerOptions = PAPER_LAYERS):
        super().__init__(dim, num_heads, mlp_ratio, chunks=6, options=options)

    def forward(self, x, c, context=None, rope=None):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope)
        x = x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class AdaLNBlock(_ModulatedBlock):
    """adaLN: LayerNorm without affine, γ and β regressed from c; no gates."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, options: LayerOptions = PAPER_LAYERS):
        super().__init__(dim, num_heads, mlp_ratio, chunks=4, options=options)

    def forward(self, x, c, context=None, rope=None):
        shift_msa, scale_msa, shift_mlp, scale_mlp = self.adaLN_modulation(c).chunk(4, dim=1)
        x = x + self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rope)
        x = x + self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x


class InContextBlock(nn.Module):
    """A plain pre-norm ViT block: conditioning arrives as extra tokens in the sequence."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, options: LayerOptions = PAPER_LAYERS, *,
                 cross_attention: bool = False):
        super().__init__()
        self.norm1 = make_norm(options.norm, dim, affine=True)
        self.attn = Attention(dim, num_heads, options.qk_norm)
        if cross_attention:  # registered here, between attn and mlp, to keep the official parameter order
            self.norm_cross = make_norm(options.norm, dim, affine=True)
            self.cross_attn = CrossAttention(dim, num_heads, options.qk_norm)
        self.norm2 = make_norm(options.norm, dim, affine=True)
        self.mlp = make_mlp(options.mlp, dim, mlp_ratio)

    def forward(self, x, c, context=None, rope=None):
        x = x + self.attn(self.norm1(x), rope)
        x = x + self.mlp(self.norm2(x))
        return x


class CrossAttentionBlock(InContextBlock):
    """The plain block plus multi-head cross-attention to [emb(t), emb(y)] between attention and MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, options: LayerOptions = PAPER_LAYERS):
        super().__init__(dim, num_heads, mlp_ratio, options, cross_attention=True)

    def forward(self, x, c, context=None, rope=None):
        x = x + self.attn(self.norm1(x), rope)
        x = x + self.cross_attn(self.norm_cross(x), context)
        x = x + self.mlp(self.norm2(x))
        return x


BLOCK_CLASSES = {
    "adaln-zero": AdaLNZeroBlock,
    "adaln": AdaLNBlock,
    "cross-attention": CrossAttentionBlock,
    "in-context": InContextBlock,
}

# --------------------------------------------------------------------------------------------
# Decoders: norm + linear to p*p*out_channels per token (adaptive norm for the adaLN designs)
# --------------------------------------------------------------------------------------------


class AdaptiveFinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: int, out_channels: int, norm: str = "layernorm"):
        super().__init__()
        self.norm_final = make_norm(norm, dim)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch_size: int, out_channels: int, norm: str = "layernorm"):
        super().__init__()
        self.norm_final = make_norm(norm, dim, affine=True)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels, bias=True)

    def forward(self, x, c):
        return self.linear(self.norm_final(x))


# --------------------------------------------------------------------------------------------
# DiT
# --------------------------------------------------------------------------------------------


class DiT(nn.Module):
    """Diffusion transformer: (x_t, t, y) -> (N, out_channels, H, W) = [eps | variance interpolation v]."""

    def __init__(self, config: DiTConfig):
        if not isinstance(self, model_class(config.block)):  # e.g. DiT(config) for a text block
            raise DitkitError(f"a {config.block!r} model is a {model_class(config.block).__name__}, not a "
                              f"{type(self).__name__}: build it with create_model(config)")
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.gradient_checkpointing = False

        self.x_embedder = PatchEmbed(config.patch_size, config.in_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = (
            LabelEmbedder(config.num_classes, d, config.class_dropout_prob) if config.num_classes > 0 else None
        )
        # Fixed, not learned; a buffer so optimizers and EMA leave it alone, saved so checkpoints carry it.
        # RoPE replaces it (as LightningDiT): positions then enter only through attention's q and k.
        grid = config.input_size // config.patch_size
        if not config.rope:
            self.register_buffer("pos_embed", sincos_2d_position_embedding(d, grid).unsqueeze(0), persistent=True)

        block_cls = BLOCK_CLASSES[config.block]
        layers = LayerOptions.of(config)
        self.blocks = nn.ModuleList(block_cls(d, config.num_heads, config.mlp_ratio, layers)
                                    for _ in range(config.depth))
        if config.long_skips:  # projection i joins block i's output to block depth-1-i's input (run_blocks)
            self.skip_projections = nn.ModuleList(nn.Linear(2 * d, d) for _ in range(config.depth // 2))
        adaptive = config.block in ("adaln-zero", "adaln")
        final_cls = AdaptiveFinalLayer if adaptive else FinalLayer
        self.final_layer = final_cls(d, config.patch_size, config.out_channels, config.norm)
        self.initialize_weights()

    # -- init (BRIEF: xavier linears, N(0, 0.02) tables/timestep MLP, zero modulation + final linear)
    def initialize_weights(self) -> None:
        def basic(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.apply(basic)
        w = self.x_embedder.proj.weight.data  # the patch embedding is a linear on flattened patches
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        if self.config.block == "adaln-zero":
            for block in self.blocks:
                nn.init.zeros_(block.adaLN_modulation[-1].weight)
                nn.init.zeros_(block.adaLN_modulation[-1].bias)
        if isinstance(self.final_layer, AdaptiveFinalLayer):
            nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
            nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)
        if self.config.long_skips:  # zero: the model starts exactly as without skips
            for projection in self.skip_projections:
                nn.init.zeros_(projection.weight)
                nn.init.zeros_(projection.bias)

    def compile_blocks(self, **options) -> "DiT":
        """``torch.compile`` each transformer block in place ("regional" compilation). The blocks are one
        class, so they share one compiled graph: the warm-up is one block's, not the whole model's
        (DiT-S/2 bf16 training on CPU: 93 s vs 425 s) for about the same step time (2.08 vs 2.00 s CPU
        time; eager 2.47 s). Weights, state-dict keys and checkpoints are unchanged."""
        for block in self.blocks:
            block.compile(**options)
        return self

    @property
    def null_class(self) -> int | None:
        """Label of the null class used for classifier-free guidance (None when unconditional)."""
        if self.y_embedder is None or self.config.class_dropout_prob <= 0:
            return None
        return self.config.num_classes

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, p*p*C) -> (N, C, H, W)."""
        c, p = self.config.out_channels, self.config.patch_size
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.config.input_size or x.shape[-2] != self.config.input_size:
            raise DitkitError(
                f"model expects {self.config.input_size}x{self.config.input_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        tokens = self.x_embedder(x)
        if self.config.rope:  # the residual stream in x's dtype, as adding pos_embed makes it under autocast
            tokens = tokens.to(x.dtype)
        else:
            tokens = tokens + self.pos_embed.to(x.dtype)
        t_emb = self.t_embedder(t)
        if self.y_embedder is not None:
            if y is None:
                raise DitkitError("this model is class-conditional: pass labels y (the null class for none)")
            y_emb = self.y_embedder(y, self.training)
            cond_tokens = torch.stack([t_emb, y_emb], dim=1)
            c = t_emb + y_emb
        else:
            if y is not None:
                raise DitkitError("this model is unconditional (num_classes=0): do not pass labels")
            cond_tokens = t_emb.unsqueeze(1)
            c = t_emb

        in_context = self.config.block == "in-context"
        if in_context:
            tokens = torch.cat([cond_tokens.to(tokens.dtype), tokens], dim=1)
        rope = self.rope_tables(cond_tokens.shape[1] if in_context else 0, x.device) if self.config.rope else None
        tokens = self.run_blocks(tokens, c, cond_tokens, rope)
        if in_context:
            tokens = tokens[:, cond_tokens.shape[1]:]
        return self.unpatchify(self.final_layer(tokens, c))

    def rope_tables(self, prefix: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE's (cos, sin) for this model's patch grid, after ``prefix`` unpositioned conditioning tokens."""
        c = self.config
        return rotary_2d_tables(c.hidden_size // c.num_heads, c.input_size // c.patch_size, prefix, device)

    def run_blocks(self, tokens, c, cond_tokens, rope):
        """The transformer blocks in turn. With long skips, block i's output is kept and joins block
        depth-1-i's input (an odd depth's middle block takes none): x + P_i([x; skip]), which is U-ViT's
        Linear([x; skip]) with [I | 0] moved out of the weight. Zero-initialised P_i then start the model
        exactly as without skips, and under bf16 autocast the residual stream keeps its float32 precision
        instead of passing through a bf16 matmul at every skip."""
        depth, kept = len(self.blocks), []
        skips = depth // 2 if self.config.long_skips else 0
        for i, block in enumerate(self.blocks):
            if i >= depth - skips:
                joined = torch.cat([tokens, kept.pop().to(tokens.dtype)], dim=-1)
                tokens = tokens + self.skip_projections[depth - 1 - i](joined)
            if self.gradient_checkpointing and self.training:
                tokens = checkpoint(block, tokens, c, cond_tokens, rope, use_reentrant=False)
            else:
                tokens = block(tokens, c, cond_tokens, rope)
            if i < skips:
                kept.append(tokens)
        return tokens


# --------------------------------------------------------------------------------------------
# Construction by name or config
# --------------------------------------------------------------------------------------------


def resolve_config(name_or_config: str | DiTConfig | dict, **overrides) -> DiTConfig:
    """A preset name ('DiT-S/2'), a DiTConfig or a dict, with keyword overrides applied."""
    if isinstance(name_or_config, DiTConfig):
        base = name_or_config.to_dict()
    elif isinstance(name_or_config, dict):
        base = dict(name_or_config)
    elif isinstance(name_or_config, str):
        base = DiTConfig().to_dict()
        base.update(preset_config(name_or_config))
    else:
        raise DitkitError(f"cannot build a model from {type(name_or_config).__name__}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return DiTConfig.from_dict(base)


def model_class(block: str) -> type:
    """The class that builds a ``block`` model (``registry.MODEL_CLASSES``), imported on first use."""
    if block not in MODEL_CLASSES:
        raise DitkitError(f"block must be one of {', '.join(MODEL_CLASSES)}, got {block!r}")
    module, name = MODEL_CLASSES[block].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


def create_model(name_or_config: str | DiTConfig | dict = "DiT-XL/2", **overrides) -> DiT:
    """Build a DiT (a text DiT for a text block): ``create_model("DiT-S/2", input_size=32, num_classes=10,
    block="adaln")``; the class comes from the registry (``model_class``)."""
    config = resolve_config(name_or_config, **overrides)
    return model_class(config.block)(config)
