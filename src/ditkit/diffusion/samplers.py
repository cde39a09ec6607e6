"""Samplers: plain functions of a denoiser, a (respaced) diffusion process and the starting noise.

THE sampler contract (every sampler, see ``registry.py`` for the list)::

    x_0 = sampler(denoiser, process, x_T, *, generator=None, noise_sampler=None, callback=None, **options)

- ``denoiser(x_t, t) -> raw model output`` (ε, or ε and the variance interpolation v for learned-sigma
  models; a velocity on the flow process), ``t`` a tensor (N,) of the network's times: ORIGINAL timesteps
  (0..999, long) on the DDPM process, 1000·t on the flow and VP processes. No sampler knows the network;
  guidance is a denoiser wrapper (``guidance.py``).
- ``process``: the process the sampler steps, of a ``family`` (``"ddpm"``: the respaced
  :class:`GaussianDiffusion`; ``"flow"``: :class:`FlowMatching`; ``"vp"``: :class:`DiscreteVPSchedule`); its
  ``num_timesteps`` steps ARE the sampler's steps (``registry.SAMPLERS[name].process(steps)`` builds the one
  each sampler prefers). Samplers read it only through its public accessors (ᾱ, α/σ, λ, the posterior).
- ``x_T``: a tensor, or a tuple/dict of tensors sampled together (``state.py``; UniDiffuser).
- ``noise_sampler(x)``: fresh N(0, I) shaped like ``x`` for stochastic steps; by default ``torch.randn``
  with ``generator``. Pass your own to make every sample depend only on its own seed (``noise.py``).
- ``callback``: k-diffusion's step callback in keyword form, ``callback(x=, i=, t=, denoised=)``, called once
  per step (``process.num_timesteps`` calls), after the step's first network evaluation: ``i`` the step's
  number in sampling order (0 first), ``t`` the times the denoiser got at that evaluation, ``x`` the state it
  was evaluated at and ``denoised`` the x̂_0 predicted there (both structured like ``x_T``). ``def
  callback(**step)`` receives k-diffusion's dict. Progress bars and counters are callbacks built by the caller
  (``ditkit.progress``); no sampler draws one.
- ``options``: each sampler's own keywords (``clip_denoised``, DDIM's ``eta``); the registry refuses
  any other with a DitkitError.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .gaussian import GaussianDiffusion
from .state import like_first, tree_map, unzip

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_noise_sampler(generator: torch.Generator | None):
    """N(0, I) noise shaped like a state, from ``generator`` (the global RNG when None)."""

    def sample(x):
        return tree_map(lambda leaf: torch.randn(leaf.shape, generator=generator, device=leaf.device,
                                                 dtype=leaf.dtype), x)

    return sample


def steps_down(process: GaussianDiffusion):
    """(step number, index) pairs: the process's step indices from T-1 down to 0, numbered 0, 1, ... in order."""
    return enumerate(range(process.num_timesteps - 1, -1, -1))


def report_step(callback, x, step: int, process: GaussianDiffusion, i: int, denoised) -> None:
    """The contract's ``callback(x=, i=, t=, denoised=)`` for step number ``step`` at process index ``i``."""
    if callback is not None:
        t = torch.full((like_first(x).shape[0],), i, dtype=torch.long, device=like_first(x).device)
        callback(x=x, i=step, t=process.original_timesteps(t), denoised=denoised)


def denoise_at(denoiser: Denoiser, process: GaussianDiffusion, x, i: int):
    """(t, output): the network's output at step ``i`` of ``process`` (t: indices into the process)."""
    leaf = like_first(x)
    t = torch.full((leaf.shape[0],), i, dtype=torch.long, device=leaf.device)
    return t, denoiser(x, process.original_timesteps(t))


# --------------------------------------------------------------------------------------------
# Ancestral DDPM (Ho et al. 2020, Algorithm 2; learned variance: Nichol & Dhariwal 2021)
# --------------------------------------------------------------------------------------------


def _ddpm_leaf(process: GaussianDiffusion, x, output, t, z, clip_denoised: bool):
    # 2. x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t (Ho eq. 15) and the posterior mean μ̃_t(x_t, x̂_0) (Ho eq. 7);
    #    variance exp(v log β_t + (1−v) log β̃_t) (Nichol & Dhariwal eq. 15), or β_t when fixed
    out = process.p_mean_variance(output, x, t, clip_denoised=clip_denoised)
    # 3. x_{t-1} = μ + σ z, z ~ N(0, I); the mean alone at the last step (z is None)
    mean = out["mean"] if z is None else out["mean"] + torch.exp(0.5 * out["log_variance"]) * z
    return mean, out["pred_xstart"]


@torch.no_grad()
def ddpm_sample(denoiser: Denoiser, process: GaussianDiffusion, x_T, *, generator=None, noise_sampler=None,
                callback=None, clip_denoised: bool = False):
    """x_T = noise; x_{t-1} ~ p(x_{t-1} | x_t) down to t = 0 (the mean at the last step)."""
    noise_sampler = noise_sampler or default_noise_sampler(generator)
    x = x_T
    for step, i in steps_down(process):
        t, output = denoise_at(denoiser, process, x, i)  # 1. the network's ε (and v) at x_t
        z = noise_sampler(x) if i > 0 else tree_map(lambda leaf: None, x)
        stepped = tree_map(lambda xl, o, zl: _ddpm_leaf(process, xl, o, t, zl, clip_denoised), x, output, z)
        x_next, x0 = unzip(stepped, x)  # 2-3. x_{t-1}, and x̂_0 for the callback
        report_step(callback, x, step, process, i, x0)
        x = x_next
    return x


# --------------------------------------------------------------------------------------------
# DDIM (Song et al. 2021): eta = 0 is the deterministic probability-flow discretisation
# --------------------------------------------------------------------------------------------


def _ddim_leaf(process: GaussianDiffusion, x, output, t, z, eta: float, clip_denoised: bool):
    # 2. x̂_0 from ε; ε is then re-derived from the (possibly clipped) x̂_0, as the reference does
    out = process.p_mean_variance(output, x, t, clip_denoised=clip_denoised)
    eps = process.predict_eps_from_xstart(x, t, out["pred_xstart"])
    alpha_bar, alpha_bar_prev = process.alpha_bar_at(t, x), process.alpha_bar_prev_at(t, x)
    # 3. σ_t(η) = η √((1−ᾱ_{t-1})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t-1})  (Song et al. eq. 16)
    sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * torch.sqrt(1 - alpha_bar / alpha_bar_prev)
    # 4. x_{t-1} = √ᾱ_{t-1} x̂_0 + √(1 − ᾱ_{t-1} − σ_t²) ε + σ_t z  (Song et al. eq. 12)
    x = out["pred_xstart"] * torch.sqrt(alpha_bar_prev) + torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps
    return (x if z is None else x + sigma * z), out["pred_xstart"]


@torch.no_grad()
def ddim_sample(denoiser: Denoiser, process: GaussianDiffusion, x_T, *, generator=None, noise_sampler=None,
                callback=None, eta: float = 0.0, clip_denoised: bool = False):
    noise_sampler = noise_sampler or default_noise_sampler(generator)
    x = x_T
    for step, i in steps_down(process):
        t, output = denoise_at(denoiser, process, x, i)  # 1. ε at x_t
        z = noise_sampler(x) if i > 0 and eta > 0 else tree_map(lambda leaf: None, x)
        stepped = tree_map(lambda xl, o, zl: _ddim_leaf(process, xl, o, t, zl, eta, clip_denoised), x, output, z)
        x_next, x0 = unzip(stepped, x)  # 2-4. x_{t-1}, and x̂_0 for the callback
        report_step(callback, x, step, process, i, x0)
        x = x_next
    return x


# --------------------------------------------------------------------------------------------
# DPM-Solver++ (2M): second-order multistep solver of the probability-flow ODE in data prediction
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def dpm_solver_pp_sample(denoiser: Denoiser, process: GaussianDiffusion, x_T, *, generator=None,
                         noise_sampler=None, callback=None, clip_denoised: bool = False):
    """Lu et al. (2022), "DPM-Solver++", Algorithm 2 (multistep, 2nd order), on the process's steps.

    One network evaluation per step: updates t_{K-1} -> ... -> t_0 in the half-log-SNR
    λ = log(α/σ), then returns the x_0 prediction at t_0. Below 15 steps the last update is first
    order (as diffusers' ``lower_order_final``): extrapolating over the very unequal final steps is
    what destabilises few-step sampling. The registry spaces its steps uniformly in log-SNR
    (``"logsnr20"``), as the DPM-Solver paper recommends. Deterministic: ``generator`` and
    ``noise_sampler`` are accepted for the common signature and unused.
    """

    def data_prediction(x, i):
        # x̂_0 = (x_t − σ_t ε) / α_t, per leaf
        _, output = denoise_at(denoiser, process, x, i)
        alpha, sigma = process.alpha_sigma(i)

        def x0(xl, o):
            pred = (xl - sigma * process.eps(o, xl)) / alpha
            return pred.clamp(-1, 1) if clip_denoised else pred

        return tree_map(x0, x, output)

    x = x_T
    prev_x0, prev_h = None, None
    for step, i in steps_down(process):
        x0 = data_prediction(x, i)  # 1. the data prediction at t_i
        report_step(callback, x, step, process, i, x0)
        if i == 0:
            return x0
        j = i - 1
        h = process.half_log_snr(j) - process.half_log_snr(i)  # 2. h_i = λ_{t_{i-1}} − λ_{t_i}
        (alpha_j, sigma_j), (_, sigma_i) = process.alpha_sigma(j), process.alpha_sigma(i)
        x = dpm_solver_pp_2m_update(x, x0, prev_x0, h, prev_h, alpha_j, sigma_j, sigma_i,
                                    first_order=j == 0 and process.num_timesteps < 15)
        prev_x0, prev_h = x0, h
    return x


def dpm_solver_pp_2m_update(x, x0, prev_x0, h: float, prev_h: float | None, alpha_next: float, sigma_next: float,
                            sigma_now: float, *, first_order: bool = False):
    """One DPM-Solver++ (2M) update x_t → x_{t'} from the data prediction x̂_0 at t (and the previous one), shared
    by every process's ``dpm++``: h = λ(t') − λ(t) in the half-log-SNR λ = log(α/σ), (α', σ') at t', σ at t.

    First order (DPM-Solver++ 1 = DDIM) on the first step (no ``prev_x0``) or when ``first_order``.
    """
    if prev_x0 is None or first_order:
        d = x0  # 3a. first-order step
    else:  # 3b. D = (1 + 1/(2r)) x̂_0(t) − 1/(2r) x̂_0(previous t), r = h_previous / h
        r = prev_h / h
        d = tree_map(lambda a, b: (1 + 1 / (2 * r)) * a - (1 / (2 * r)) * b, x0, prev_x0)
    # 4. x_{t'} = (σ'/σ) x_t − α' (e^{−h} − 1) D
    return tree_map(lambda xl, dl: (sigma_next / sigma_now) * xl - (alpha_next * math.expm1(-h)) * dl, x, d)
