"""UniDiffuser's training objective, as a pluggable objective for ditkit's training step.

Each sample gets its own image timestep ``t_img`` and text timestep ``t_text``, drawn independently and
uniformly from {1, …, N} (Bao et al., 2023, Algorithm 1); the image latent and its CLIP-image token are
noised at ``t_img``, the text latent at ``t_text``, on the Stable Diffusion scaled-linear schedule the
sampler uses (ᾱ_t = ∏_{j≤t}(1 − β_j)). The loss is the sum over the three modalities of the noise-prediction
mean squared error — one network learns every marginal, conditional and joint at once.

batch: ``img`` (N, C, H, W) clean latents, ``clip_img`` (N, 1, Dc), ``text`` (N, T, Dt) text latents (the
caption decoder's ``encode_prefix`` of the frozen encoder states, trained with the decoder and then fixed, as
the official model's), and optionally ``data_type`` (N,) (default 1, as v1 samples with).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion.vp_schedule import stable_diffusion_betas

__all__ = ["UniDiffuserObjective", "CaptionDecoderObjective"]

MODALITIES = ("img", "clip_img", "text")


class UniDiffuserObjective:
    """``objective(net, batch, generator) → {"loss", "mse_img", "mse_clip_img", "mse_text"}`` per sample."""

    def __init__(self, betas: torch.Tensor | None = None, data_type: int = 1):
        betas = stable_diffusion_betas() if betas is None else betas
        self.num_timesteps = len(betas)
        self.alpha_bar = torch.cumprod(1.0 - betas.double(), dim=0).float()  # (N,) ᾱ_t at t = 1..N
        self.data_type = data_type

    def noise(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε, with t in 1..N per sample."""
        a = self.alpha_bar.to(x.device)[t - 1].view(-1, *([1] * (x.dim() - 1)))  # (N, 1, ...)
        return a.sqrt() * x + (1.0 - a).sqrt() * eps

    def draw(self, batch: dict, generator: torch.Generator | None):
        """(t_img, t_text, noise per modality) for this batch, in a fixed order (so a generator replays it)."""
        x = batch["img"]
        n, device = x.shape[0], x.device
        t_img = torch.randint(1, self.num_timesteps + 1, (n,), device=device, generator=generator)
        t_text = torch.randint(1, self.num_timesteps + 1, (n,), device=device, generator=generator)
        eps = {k: torch.randn(batch[k].shape, device=device, dtype=batch[k].dtype, generator=generator)
               for k in MODALITIES}
        return t_img, t_text, eps

    def __call__(self, net, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        t_img, t_text, eps = self.draw(batch, generator)
        steps = {"img": t_img, "clip_img": t_img, "text": t_text}  # the CLIP token belongs to the image
        noisy = {k: self.noise(batch[k], eps[k], steps[k]) for k in MODALITIES}
        data_type = batch.get("data_type")
        if data_type is None:
            data_type = torch.full_like(t_img, self.data_type)
        preds = net(noisy["img"], noisy["clip_img"], noisy["text"], t_img, t_text, data_type)  # 3 noise predictions
        losses = {f"mse_{k}": F.mse_loss(p.float(), eps[k].float(), reduction="none").flatten(1).mean(1)
                  for k, p in zip(MODALITIES, preds)}  # (N,) each
        losses["loss"] = losses["mse_img"] + losses["mse_clip_img"] + losses["mse_text"]
        return losses


class CaptionDecoderObjective:
    """The caption decoder's objective (trained before the U-ViT, as the official one): frozen text-encoder
    states → ``encode_prefix`` (the 64-d reduction, learned here) → the decoder's cross-entropy of the caption.

    batch: ``states`` (N, L, W) the frozen encoder's states, ``ids`` (N, Lc) the caption's token ids
    (``decoder.ids_of(captions, Lc)``; -100 pads). ``net`` is the decoder.
    """

    def __call__(self, net, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        latents = net.encode_prefix(batch["states"])  # (N, L, text_dim)
        return {"loss": net.token_losses(latents, batch["ids"])}  # (N,)
