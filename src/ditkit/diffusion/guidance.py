"""Classifier-free guidance as a denoiser wrapper: eps = eps(null) + s · (eps(y) − eps(null))."""

from __future__ import annotations

import torch

from ..errors import DitkitError


def cfg_denoiser(model, y: torch.Tensor | None, scale: float | None = 1.0, *, guided_channels: int | None = None,
                 null_class: int | None = None, uncond=None):
    """A denoiser ``(x_t, t) -> output`` for ``model(x, t, y)`` with classifier-free guidance.

    The conditional and unconditional halves run as ONE batched forward. ``guided_channels=None``
    guides every eps channel (the standard form); ``guided_channels=3`` reproduces the official DiT
    code, which guides only the first three latent channels. Channels past the guided ones (and the
    variance outputs) come from the conditional half, as in the reference. ``scale`` 1 (or no labels)
    means no guidance and a single forward. ``uncond``: the unconditional input itself instead of the
    null class — a text model's null text or negative prompt (any ``y`` type with a ``cat`` classmethod).
    """
    if y is None or scale is None or float(scale) == 1.0:
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
        guided = uncond[:, :k] + scale * (cond[:, :k] - uncond[:, :k])
        return torch.cat([guided, cond[:, k:]], dim=1)

    return denoise
