"""Classifier-free guidance: THE combination of a conditional and an unconditional prediction, and the DiT's
denoiser wrapper.

Guidance pushes the conditional prediction away from the unconditional one along Δ = cond − uncond. The two
model families write it with different anchors, which are one function with two parametrisations:

- ``"dit"`` (DiT and the text DiTs, ``cfg_scale``): uncond + s·Δ; s = 1 is no guidance;
- ``"unidiffuser"`` (UniDiffuser's modes, ``scale``): cond + s·Δ; s = 0 is no guidance;

so cond + s·Δ = uncond + (1 + s)·Δ: a UniDiffuser scale s is a DiT scale 1 + s. :func:`guide` computes either
with the arithmetic of its own reference code (golden tests pin both); ``cfg_denoiser`` (here) and
``unidiffuser.mode_denoiser`` call it.
"""

from __future__ import annotations

import torch

from ..errors import DitkitError

# The scale that means "no guidance" in each convention (the guided output is then the conditional one).
NO_GUIDANCE = {"dit": 1.0, "unidiffuser": 0.0}


def guide(cond, uncond, scale: float, *, convention: str = "dit"):
    """The guided prediction from ``cond`` and ``uncond`` (tensors alike): uncond + s·(cond − uncond) in the
    ``"dit"`` convention, cond + s·(cond − uncond) in the ``"unidiffuser"`` one (see the table above)."""
    if convention not in NO_GUIDANCE:
        raise ValueError(f"unknown guidance convention {convention!r}; expected one of {', '.join(NO_GUIDANCE)}")
    anchor = uncond if convention == "dit" else cond
    return anchor + scale * (cond - uncond)


def cfg_denoiser(model, y: torch.Tensor | None, scale: float | None = 1.0, *, guided_channels: int | None = None,
                 null_class: int | None = None, uncond=None):
    """A denoiser ``(x_t, t) -> output`` for ``model(x, t, y)`` with classifier-free guidance (``"dit"``
    convention: ``scale`` 1, or no labels, is no guidance and a single forward).

    The conditional and unconditional halves run as ONE batched forward. ``guided_channels=None``
    guides every eps channel (the standard form); ``guided_channels=3`` reproduces the official DiT
    code, which guides only the first three latent channels. Channels past the guided ones (and the
    variance outputs) come from the conditional half, as in the reference. ``uncond``: the unconditional
    input itself instead of the null class — a text model's null text or negative prompt (any ``y`` type
    with a ``cat`` classmethod).
    """
    if y is None or scale is None or float(scale) == NO_GUIDANCE["dit"]:
        return lambda x, t: model(x, t, y)
    null = getattr(model, "null_class", None) if null_class is None else null_class
    if uncond is not None:
        both = type(y).cat([y, uncond])
    elif null is None:
        raise DitkitError("classifier-free guidance needs a model trained with label dropout (a null class)")
    else:
        both = torch.cat([y, torch.full_like(y, null)])
    scale = float(scale)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n, channels = x.shape[0], x.shape[1]
        output = model(torch.cat([x, x]), torch.cat([t, t]), both)
        cond, uncond = output[:n], output[n:]
        k = channels if guided_channels is None else guided_channels
        return torch.cat([guide(cond[:, :k], uncond[:, :k], scale), cond[:, k:]], dim=1)

    return denoise
