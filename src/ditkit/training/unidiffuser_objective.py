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

from ..diffusion.flow import FlowMatching
from ..diffusion.vp_schedule import stable_diffusion_betas
from ..errors import DitkitError

__all__ = ["UniDiffuserObjective", "UniDiffuserFlowObjective", "CaptionDecoderObjective"]

MODALITIES = ("img", "clip_img", "text")


class UniDiffuserObjective:
    """``objective(net, batch, generator) → {"loss", "mse_img", "mse_clip_img", "mse_text"}`` per sample.

    ``condition_share`` p > 0 (not in the paper; 0 is Algorithm 1 exactly): each sample is, with probability p,
    put on one of the five lines of (t_img, t_text) the modes sample, chosen uniformly — the image or the text
    clean (time 0: i2t's image, t2i's text), the image or the text absent (pure noise: modes t and i and the
    unconditional half of guidance), or both at one time (joint) — the other modality at its drawn time. A
    clean modality's noise cannot be predicted from anything, so its loss term is left out."""

    clean_time, absent_time = 0, None  # absent: the last step (set in __init__)

    def __init__(self, betas: torch.Tensor | None = None, data_type: int = 1, condition_share: float = 0.0):
        betas = stable_diffusion_betas() if betas is None else betas
        self.num_timesteps = len(betas)
        self.alpha_bar = torch.cumprod(1.0 - betas.double(), dim=0).float()  # (N,) ᾱ_t at t = 1..N
        self.data_type = data_type
        self.absent_time = self.num_timesteps
        if not 0.0 <= condition_share <= 1.0:
            raise DitkitError(f"the UniDiffuser condition share must be in [0, 1], got {condition_share}")
        self.condition_share = float(condition_share)

    def noise(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x + √(1 − ᾱ_t)·ε, with t in 0..N per sample (0: clean)."""
        table = torch.cat([torch.ones(1), self.alpha_bar]).to(x.device)  # ᾱ_0 = 1
        a = table[t].view(-1, *([1] * (x.dim() - 1)))  # (N, 1, ...)
        return a.sqrt() * x + (1.0 - a).sqrt() * eps

    def target(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return eps  # the noise prediction

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def sample_times(self, n: int, device, generator) -> torch.Tensor:
        return torch.randint(1, self.num_timesteps + 1, (n,), device=device, generator=generator)

    def draw(self, batch: dict, generator: torch.Generator | None):
        """(t_img, t_text, noise per modality) for this batch, in a fixed order (so a generator replays it)."""
        x = batch["img"]
        n, device = x.shape[0], x.device
        t_img = self.sample_times(n, device, generator)
        t_text = self.sample_times(n, device, generator)
        eps = {k: torch.randn(batch[k].shape, device=device, dtype=batch[k].dtype, generator=generator)
               for k in MODALITIES}
        if self.condition_share > 0:
            t_img, t_text = self.mix_conditions(t_img, t_text, generator)
        return t_img, t_text, eps

    def mix_conditions(self, t_img, t_text, generator):
        """A share of the samples moved onto the modes' lines: case 0/1 image/text clean, 2/3 image/text absent,
        4 the text at the image's time."""
        n, device = t_img.shape[0], t_img.device
        chosen = torch.rand(n, device=device, generator=generator) < self.condition_share
        case = torch.where(chosen, torch.randint(0, 5, (n,), device=device, generator=generator), -1)
        clean, absent = torch.full_like(t_img, self.clean_time), torch.full_like(t_img, self.absent_time)
        t_img = torch.where(case == 0, clean, torch.where(case == 2, absent, t_img))
        t_text = torch.where(case == 1, clean, torch.where(case == 3, absent, t_text))
        return t_img, torch.where(case == 4, t_img, t_text)

    def __call__(self, net, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        t_img, t_text, eps = self.draw(batch, generator)
        steps = {"img": t_img, "clip_img": t_img, "text": t_text}  # the CLIP token belongs to the image
        noisy = {k: self.noise(batch[k], eps[k], steps[k]) for k in MODALITIES}
        data_type = batch.get("data_type")
        if data_type is None:
            data_type = torch.full_like(t_img, self.data_type, dtype=torch.long)
        preds = net(noisy["img"], noisy["clip_img"], noisy["text"], self.network_time(t_img),
                    self.network_time(t_text), data_type)  # 3 predictions (noise, or velocity on the flow process)
        losses = {f"mse_{k}": F.mse_loss(p.float(), self.target(batch[k], eps[k]).float(), reduction="none")
                  .flatten(1).mean(1) for k, p in zip(MODALITIES, preds)}  # (N,) each
        if self.condition_share > 0:  # a clean modality is the condition: nothing to predict there
            losses = {k: v * (steps[k[4:]] != self.clean_time) for k, v in losses.items()}
        losses["loss"] = losses["mse_img"] + losses["mse_clip_img"] + losses["mse_text"]
        return losses


class UniDiffuserFlowObjective(UniDiffuserObjective):
    """The same objective on the flow process (``diffusion/flow.py``): x_t = (1 − t)x₀ + tε with t ∈ [0, 1] per
    modality drawn by the process's time sampling (uniform or logit-normal, shifted), the network's time 1000·t,
    the velocity ε − x₀ as every modality's target. Not in the paper: a faster lever (docs/recipe.md)."""

    clean_time, absent_time = 0.0, 1.0

    def __init__(self, process: FlowMatching, data_type: int = 1, condition_share: float = 0.0):
        if process.prediction != "velocity":
            raise DitkitError("a flow-matching UniDiffuser predicts velocities (--prediction velocity)")
        super().__init__(data_type=data_type, condition_share=condition_share)
        self.process, self.absent_time = process, 1.0

    def noise(self, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.process.q_sample(x, t.to(x.dtype), eps)

    def target(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return eps - x  # the velocity dx_t/dt

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        return self.process.network_time(t)

    def sample_times(self, n: int, device, generator) -> torch.Tensor:
        return self.process.sample_training_t(n, device, generator)


class CaptionDecoderObjective:
    """The caption decoder's objective (trained before the U-ViT, as the official one): frozen text-encoder
    states → ``encode_prefix`` (the 64-d reduction, learned here) → the decoder's cross-entropy of the caption.

    batch: ``states`` (N, L, W) the frozen encoder's states, ``ids`` (N, Lc) the caption's token ids
    (``decoder.ids_of(captions, Lc)``; -100 pads). ``net`` is the decoder.
    """

    def __call__(self, net, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        latents = net.encode_prefix(batch["states"])  # (N, L, text_dim)
        return {"loss": net.token_losses(latents, batch["ids"])}  # (N,)
