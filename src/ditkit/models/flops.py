"""Forward-pass complexity per image, counted the way the DiT paper reports "Gflops".

The paper's Gflops are multiply-accumulates (MACs) of one forward pass for one image: DiT-XL/2 at 256 px
is 118.62 G. Rather than hand formulas (which drift as blocks change), we run the real forward on the
meta device — no memory, no arithmetic — under ``torch.utils.flop_counter.FlopCounterMode``, which counts
every matmul, convolution and attention op in FLOPs (2 per MAC). Elementwise work (norms, activations,
modulation) is not counted, as in the paper.

The architecture options are counted as built: a SwiGLU MLP's three matrices and the long skips' Linear(2D, D)
projections add their MACs and parameters; RMSNorm, QK-norm and RoPE are elementwise (no MACs), QK-norm adds
its per-head scales to the parameters, and RoPE removes the stored sin-cos ``pos_embed`` from them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import DitkitError
from .dit import DiT, DiTConfig, create_model, resolve_config

__all__ = ["count_flops", "count_params", "model_complexity"]


def _config_of(model_or_config, **overrides) -> DiTConfig:
    if isinstance(model_or_config, DiT):
        model_or_config = model_or_config.config
    return resolve_config(model_or_config, **overrides)


def _meta_model(config: DiTConfig) -> DiT:
    with torch.device("meta"):
        return create_model(config).eval()


def count_flops(model_or_config, **overrides) -> float:
    """Forward MACs per image ("Gflops" × 1e9 in the paper's sense) of a DiT, a DiTConfig, a dict or a name."""
    config = _config_of(model_or_config, **overrides)
    return _count_flops_cached(tuple(sorted(config.to_dict().items())))


# Tracing the meta forward through the counter costs seconds for XL models; configs repeat.
@lru_cache(maxsize=64)
def _count_flops_cached(config_items: tuple) -> float:
    config = DiTConfig.from_dict(dict(config_items))
    model = _meta_model(config)
    with torch.device("meta"):
        x = torch.empty(1, config.in_channels, config.input_size, config.input_size)
        t = torch.zeros(1, dtype=torch.long)
        y = torch.zeros(1, dtype=torch.long) if config.num_classes > 0 else None
        if config.text_dim:  # a text model attends to all of its text_len tokens
            from .text_dit import example_text
            y = example_text(config)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x, t, y)
    return counter.get_total_flops() / 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


def count_params(model_or_config, **overrides) -> int:
    """Number of stored values, as the official code counts parameters (the fixed pos_embed included)."""
    config = _config_of(model_or_config, **overrides)
    return sum(v.numel() for v in _meta_model(config).state_dict().values())


def model_complexity(
    name_or_config,
    image_size: int = 256,
    *,
    downsample: int = 8,
    in_channels: int | None = None,
    **overrides,
) -> dict[str, Any]:
    """Gflops and parameters of a model applied to ``image_size`` px images.

    ``downsample`` is the codec's factor (8 for the SD VAE, 1 for pixel space); ``in_channels`` defaults
    to 4 latent channels with a VAE and 3 in pixel space.
    """
    if downsample < 1 or image_size < 1 or image_size % downsample:
        raise DitkitError(
            f"Image size {image_size} is not a positive multiple of the codec's downsampling factor {downsample}."
        )
    input_size = image_size // downsample
    if in_channels is None:
        in_channels = 3 if downsample == 1 else 4
    base = _config_of(name_or_config, **overrides)
    if input_size % base.patch_size:
        raise DitkitError(
            f"Image size {image_size} gives a {input_size}x{input_size} model input, which patch size "
            f"{base.patch_size} does not divide."
        )
    config = resolve_config(base, input_size=input_size, in_channels=in_channels)
    return {
        "config": config.to_dict(),
        "image_size": image_size,
        "tokens": config.num_patches,
        "gflops": count_flops(config) / 1e9,
        "params": count_params(config),
    }
