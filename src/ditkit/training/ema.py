"""Exponential moving average of the weights (the model DiT samples from)."""

from __future__ import annotations

import copy

import torch


def make_ema(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen float32 copy of ``model`` in eval mode (starts equal to the model, as the reference)."""
    ema = copy.deepcopy(model).float().eval()
    ema.gradient_checkpointing = False
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


def ema_decay_at(step: int, decay: float, warmup: bool) -> float:
    """The decay for the update after ``step`` optimizer steps; with warm-up, min(decay, (1+t)/(10+t))
    so a short run's EMA is not stuck at the initial weights."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


@torch.no_grad()
def update_ema(ema_params: list[torch.Tensor], model_params: list[torch.Tensor], decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·param, over matching parameter lists (buffers are fixed in DiT).

    Two foreach kernels over all parameters (not a Python loop of 2 per tensor); the parameters are
    fp32 (autocast keeps master weights fp32), so no copy is made for ``src``.
    """
    src = [p.detach() if p.dtype == torch.float32 else p.detach().float() for p in model_params]
    torch._foreach_mul_(ema_params, decay)
    torch._foreach_add_(ema_params, src, alpha=1.0 - decay)
