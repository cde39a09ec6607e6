"""Heun's second-order solver of the probability-flow ODE (Karras et al. 2022, "EDM", Algorithm 1).

Written on the discrete DiT process: x_t = α_t x_0 + σ_t ε becomes x̃ = x_t / α_t = x_0 + σ̃_t ε with
EDM's noise level σ̃_t = σ_t / α_t, and the ODE is dx̃/dσ̃ = (x̃ − D(x̃; σ̃)) / σ̃ = ε̂. Every step is an
Euler predictor and a trapezoidal corrector between two of the process's timesteps (two network
evaluations); the last step, to σ̃ = 0, is Euler (it returns the data prediction at t_0), so K steps
cost 2K − 1 evaluations. DDIM (η = 0) is exactly the Euler method on the same ODE.
"""

from __future__ import annotations

import torch

from .gaussian import GaussianDiffusion
from .samplers import Denoiser, denoise_at, report_step, steps_down
from .state import tree_map


@torch.no_grad()
def heun_sample(denoiser: Denoiser, process: GaussianDiffusion, x_T, *, generator=None, noise_sampler=None,
                callback=None, clip_denoised: bool = False):
    """Deterministic: ``generator`` and ``noise_sampler`` are accepted for the common signature, unused."""

    def slope(x_tilde, i):
        """d = (x̃ − D(x̃; σ̃_i)) / σ̃_i, and D, at step i (EDM eq. 3 with the network's ε)."""
        alpha, _ = process.alpha_sigma(i)
        sigma = process.edm_sigma(i)
        _, output = denoise_at(denoiser, process, tree_map(lambda v: alpha * v, x_tilde), i)

        def data(v, o):  # D = x̃ − σ̃ ε̂
            d = v - sigma * process.eps(o, v)
            return d.clamp(-1, 1) if clip_denoised else d

        denoised = tree_map(data, x_tilde, output)
        return tree_map(lambda v, d: (v - d) / sigma, x_tilde, denoised), denoised

    alpha_T, _ = process.alpha_sigma(process.num_timesteps - 1)
    x = tree_map(lambda v: v / alpha_T, x_T)  # 1. x̃_{K-1} = x_T / α_{K-1}
    for step, i in steps_down(process):
        d, denoised = slope(x, i)  # 2. d_i at (x̃_i, σ̃_i)
        if callback is not None:  # the state as the process writes it: x_t = α_t x̃
            alpha = process.alpha_sigma(i)[0]
            report_step(callback, tree_map(lambda v: alpha * v, x), step, process, i, denoised)
        if i == 0:
            return denoised  # 5. Euler to σ̃ = 0: x̃_0 − σ̃_0 d_0 = D(x̃_0; σ̃_0)
        dt = process.edm_sigma(i - 1) - process.edm_sigma(i)
        x_euler = tree_map(lambda v, s: v + dt * s, x, d)  # 3. Euler predictor (EDM Alg. 1, line 5)
        d_next, _ = slope(x_euler, i - 1)
        x = tree_map(lambda v, s, s2: v + dt * 0.5 * (s + s2), x, d, d_next)  # 4. trapezoidal corrector (line 8)
    return x
