"""Input embeddings of a DiT: patches, fixed 2-D sin-cos positions, 2-D rotary positions (RoPE), timesteps and
class labels.

Parameter names match the official DiT release (``x_embedder.proj``, ``t_embedder.mlp``,
``y_embedder.embedding_table``) so its checkpoints load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# --------------------------------------------------------------------------------------------
# Fixed 2-D sin-cos position embedding (MAE style; not learned)
# --------------------------------------------------------------------------------------------


def _sincos_1d(embed_dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, embed_dim): [sin(pos * w), cos(pos * w)], w = 1 / 10000^(2i/D)."""
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.reshape(-1, 1).to(torch.float64) * omega[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d_position_embedding(embed_dim: int, grid_size: int) -> torch.Tensor:
    """(grid_size**2, embed_dim) float32 table, rows in raster order.

    Computed in float64 and rounded once, like the reference (numpy float64), so the table is
    bit-identical to the ``pos_embed`` stored in official checkpoints.
    """
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos position embedding needs a width divisible by 4, got {embed_dim}")
    coords = torch.arange(grid_size, dtype=torch.float64)
    # The reference builds meshgrid(w, h) and embeds grid[0] (the column index) in the first half.
    grid_w, grid_h = torch.meshgrid(coords, coords, indexing="xy")
    first = _sincos_1d(embed_dim // 2, grid_w)
    second = _sincos_1d(embed_dim // 2, grid_h)
    return torch.cat([first, second], dim=1).float()


# --------------------------------------------------------------------------------------------
# 2-D rotary position embedding (RoPE) on attention queries and keys (DiTConfig.rope)
# --------------------------------------------------------------------------------------------


def rotary_2d_tables(head_dim: int, grid_size: int, prefix: int = 0, device=None,
                     base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (prefix + grid_size**2, head_dim // 2) float32: one angle per channel pair and token.

    Tokens are in raster order (token r·grid + c). The first head_dim/4 channel pairs turn with the token's
    row, the last head_dim/4 with its column, at frequencies base^(-j / (head_dim/4)) (EVA / LightningDiT's
    2-D RoPE). ``prefix`` leading tokens (in-context conditioning) have no grid position: angle 0, unrotated.
    Computed per forward in float32 on the input's device: a few thousand values, and no buffer to save or
    to leave behind on the meta device when checkpoints are loaded.
    """
    if head_dim % 4:
        raise ValueError(f"2-D rotary embedding needs a head width divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    coords = torch.arange(grid_size, dtype=torch.float32, device=device)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    angles = torch.cat([rows.reshape(-1, 1) * freqs, cols.reshape(-1, 1) * freqs], dim=1)  # (T, head_dim/2)
    angles = torch.cat([angles.new_zeros(prefix, 2 * quarter), angles])
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each channel pair (2i, 2i+1) of x (..., T, head_dim) by its token's angle i: q·k of two rotated
    vectors then depends on their positions only through the offset. Float32 math, x's dtype back."""
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).to(x.dtype)


# --------------------------------------------------------------------------------------------
# Patch embedding
# --------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """(N, C, H, W) -> (N, T, D) with T = (H/p)(W/p): a p×p stride-p convolution is a per-patch linear."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


# --------------------------------------------------------------------------------------------
# Timestep and label embeddings
# --------------------------------------------------------------------------------------------


def timestep_frequencies(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps: (N,) -> (N, dim), [cos | sin]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class TimestepEmbedder(nn.Module):
    """emb(t): 256 sinusoidal frequencies -> Linear -> SiLU -> Linear."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        freqs = timestep_frequencies(t, self.frequency_size)
        return self.mlp(freqs.to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """emb(y): a table of num_classes (+1 null row when labels can be dropped for CFG).

    Label dropout lives here (as in the reference): in training, each label is replaced by the
    null class ``num_classes`` with probability ``dropout_prob``.
    """

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        has_null = dropout_prob > 0
        self.embedding_table = nn.Embedding(num_classes + int(has_null), hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def drop_labels(self, labels: torch.Tensor) -> torch.Tensor:
        drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        return torch.where(drop, torch.full_like(labels, self.num_classes), labels)

    def forward(self, labels: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.dropout_prob > 0:
            labels = self.drop_labels(labels)
        return self.embedding_table(labels)
