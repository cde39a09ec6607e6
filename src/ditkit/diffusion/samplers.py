"""Samplers: plain functions of a denoiser, a (respaced) diffusion process and the starting noise.

A *denoiser* is any callable ``denoiser(x_t, t) -> raw model output`` (eps, or eps and the variance
interpolation v for learned-sigma models) where ``t`` holds ORIGINAL timesteps (0..999). No sampler
knows the network; guidance is a denoiser wrapper (``guidance.cfg_denoiser``).

``noise_sampler(x)`` returns fresh N(0, I) noise shaped like ``x`` for stochastic steps; by default
``torch.randn`` with ``generator``. Pass your own to make every sample depend only on its own seed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DitkitError
from .gaussian import GaussianDiffusion, create_diffusion

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _default_noise_sampler(generator: torch.Generator | None):
    def sample(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    return sample


def _steps(diffusion: GaussianDiffusion, progress: bool, desc: str):
    return tqdm(list(range(diffusion.num_timesteps))[::-1], disable=not progress, desc=desc, leave=False)


def _model_out(denoiser: Denoiser, diffusion: GaussianDiffusion, x: torch.Tensor, i: int):
    t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
    return t, denoiser(x, diffusion.original_timesteps(t))


# --------------------------------------------------------------------------------------------
# Ancestral DDPM
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def ddpm_sample(denoiser: Denoiser, diffusion: GaussianDiffusion, noise: torch.Tensor, *,
                clip_denoised: bool = False, noise_sampler=None, generator=None, progress: bool = False):
    """x_T = noise; x_{t-1} ~ p(x_{t-1} | x_t) down to t = 0 (the mean at the last step)."""
    noise_sampler = noise_sampler or _default_noise_sampler(generator)
    x = noise
    for i in _steps(diffusion, progress, "ddpm"):
        t, output = _model_out(denoiser, diffusion, x, i)
        out = diffusion.p_mean_variance(output, x, t, clip_denoised=clip_denoised)
        x = out["mean"] + torch.exp(0.5 * out["log_variance"]) * noise_sampler(x) if i > 0 else out["mean"]
    return x


# --------------------------------------------------------------------------------------------
# DDIM (Song et al.): eta = 0 is the deterministic probability-flow discretisation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def ddim_sample(denoiser: Denoiser, diffusion: GaussianDiffusion, noise: torch.Tensor, *, eta: float = 0.0,
                clip_denoised: bool = False, noise_sampler=None, generator=None, progress: bool = False):
    noise_sampler = noise_sampler or _default_noise_sampler(generator)
    x = noise
    for i in _steps(diffusion, progress, "ddim"):
        t, output = _model_out(denoiser, diffusion, x, i)
        out = diffusion.p_mean_variance(output, x, t, clip_denoised=clip_denoised)
        # eps is re-derived from the (possibly clipped) x_0 prediction, as the reference does
        eps = diffusion.predict_eps_from_xstart(x, t, out["pred_xstart"])
        alpha_bar = diffusion._gather("alphas_cumprod", t, x)
        alpha_bar_prev = diffusion._gather("alphas_cumprod_prev", t, x)
        sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
        x = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
        if i > 0 and eta > 0:
            x = x + sigma * noise_sampler(x)
    return x


# --------------------------------------------------------------------------------------------
# DPM-Solver++ (2M): second-order multistep solver of the probability-flow ODE in data prediction
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def dpm_solver_pp_sample(denoiser: Denoiser, diffusion: GaussianDiffusion, noise: torch.Tensor, *,
                         clip_denoised: bool = False, progress: bool = False, **_unused):
    """Lu et al. (2022), multistep 2nd order, on the timesteps of a respaced ``diffusion``.

    One network evaluation per step: updates t_{K-1} -> ... -> t_0 in the half-log-SNR
    lambda = log(alpha/sigma), then returns the x_0 prediction at t_0. Below 15 steps the last
    update is first order (as diffusers' ``lower_order_final``): extrapolating over the very
    unequal final steps is what destabilises few-step sampling. ``respacing_for("dpm++", K)``
    spaces the steps uniformly in log-SNR, as the DPM-Solver paper recommends.
    """
    channels = noise.shape[1]
    alpha_bar = np.asarray(diffusion.alphas_cumprod, dtype=np.float64)
    alpha = np.sqrt(alpha_bar)
    sigma = np.sqrt(1.0 - alpha_bar)
    lam = np.log(alpha) - np.log(sigma)

    def data_prediction(x, i):
        t, output = _model_out(denoiser, diffusion, x, i)
        eps = output[:, :channels]
        x0 = (x - float(sigma[i]) * eps) / float(alpha[i])
        return x0.clamp(-1, 1) if clip_denoised else x0

    x = noise
    prev_x0, prev_h = None, None
    steps = list(range(diffusion.num_timesteps))[::-1]
    for i in tqdm(steps, disable=not progress, desc="dpm++", leave=False):
        x0 = data_prediction(x, i)
        if i == 0:
            return x0
        j = i - 1
        h = lam[j] - lam[i]
        if prev_x0 is None or (j == 0 and len(steps) < 15):
            d = x0  # first-order step: DPM-Solver++ 1 (= DDIM)
        else:
            r = prev_h / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * prev_x0
        x = float(sigma[j] / sigma[i]) * x - float(alpha[j] * np.expm1(-h)) * d
        prev_x0, prev_h = x0, h
    return x


# --------------------------------------------------------------------------------------------
# By name
# --------------------------------------------------------------------------------------------

SAMPLERS = {"ddpm": ddpm_sample, "ddim": ddim_sample, "dpm++": dpm_solver_pp_sample}
DEFAULT_STEPS = {"ddpm": 250, "ddim": 50, "dpm++": 20}


def respacing_for(sampler: str, steps: int, diffusion_steps: int = 1000) -> str:
    """The respacing string a sampler uses for ``steps`` steps (DDIM prefers an integer stride)."""
    if steps < 1 or steps > diffusion_steps:
        raise DitkitError(f"steps must be between 1 and {diffusion_steps}, got {steps}")
    if sampler == "dpm++":
        return f"logsnr{steps}" if steps >= 2 else str(steps)
    if sampler == "ddim" and any(len(range(0, diffusion_steps, s)) == steps for s in range(1, diffusion_steps)):
        return f"ddim{steps}"
    return str(steps)


def get_sampler(name: str):
    try:
        return SAMPLERS[name]
    except KeyError:
        raise DitkitError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}") from None


def sample(denoiser: Denoiser, noise: torch.Tensor, *, sampler: str = "ddpm", steps: int | None = None,
           noise_schedule: str = "linear", learn_sigma: bool = True, diffusion_steps: int = 1000, **kwargs):
    """Build the respaced process for ``sampler``/``steps`` and run it."""
    fn = get_sampler(sampler)
    steps = steps or DEFAULT_STEPS[sampler]
    diffusion = create_diffusion(respacing_for(sampler, steps, diffusion_steps), noise_schedule=noise_schedule,
                                 learn_sigma=learn_sigma, diffusion_steps=diffusion_steps)
    return fn(denoiser, diffusion, noise, **kwargs)
