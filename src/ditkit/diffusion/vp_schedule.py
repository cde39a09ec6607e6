"""The continuous-time view of a discrete DDPM schedule that DPM-Solver samples on (UniDiffuser's process).

UniDiffuser trains on Stable Diffusion's scaled-linear betas (1000 steps) and samples with DPM-Solver over
continuous t ∈ (0, 1]: log α(t) is the piecewise-linear interpolation of the discrete table
``0.5·cumsum(log(1 − β))`` placed at t = 1/N, 2/N, …, 1 (extrapolated linearly past its ends), σ = √(1 − α²)
and λ = log α − log σ is the half log-SNR the solver steps in. Everything is float32 as the official
sampler computes it, so its golden numbers are met to ~1e-7.

As a process of the sampler registry (``family = "vp"``) it carries the sampling steps (``with_steps``) and the
network's time 1000·t, the time UniDiffuser's network takes (``N`` = 1000 table entries).
"""

from __future__ import annotations

import torch

__all__ = ["stable_diffusion_betas", "DiscreteVPSchedule", "interpolate"]


def stable_diffusion_betas(num_steps: int = 1000, start: float = 0.00085, end: float = 0.012) -> torch.Tensor:
    """(num_steps,) float64 betas, linear in √β: linspace(√start, √end, N)²."""
    return torch.linspace(start**0.5, end**0.5, num_steps, dtype=torch.float64) ** 2


def interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear f(x) through (xp, fp), xp increasing; outside [xp[0], xp[-1]] the end segments extend."""
    right = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)  # segment (right-1, right), same shape as x
    x0, x1, y0, y1 = xp[right - 1], xp[right], fp[right - 1], fp[right]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


class DiscreteVPSchedule:
    """DPM-Solver's ``NoiseScheduleVP('discrete')`` of a beta table: α(t), σ(t), λ(t) and t(λ) for t ∈ (0, 1];
    ``steps`` sets the sampling steps (None: none, as for training)."""

    family = "vp"

    def __init__(self, betas: torch.Tensor | None = None, steps: int | None = None):
        betas = stable_diffusion_betas() if betas is None else betas
        self.betas = betas.float()  # (N,) the sampler works in float32
        self.num_steps = len(betas)
        self.log_alpha_table = 0.5 * torch.cumsum(torch.log(1.0 - self.betas), dim=0)  # (N,) log √ᾱ_n, n = 1..N
        self.t_table = torch.linspace(1.0 / self.num_steps, 1.0, self.num_steps)  # (N,) t_n = n/N
        self.T = 1.0
        self.eps = 1.0 / self.num_steps  # the smallest tabulated time: sampling stops there
        self.num_timesteps = int(steps) if steps is not None else 0  # the sampler's steps

    def with_steps(self, steps: int) -> "DiscreteVPSchedule":
        """The same schedule as a process of ``steps`` sampling steps."""
        return DiscreteVPSchedule(self.betas, steps)

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        """The network's time of continuous t: N·t (t = 1 is the table's last step, N)."""
        return t * self.num_steps

    def marginal_log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        """log α(t), elementwise."""
        return interpolate(t.float(), self.t_table.to(t.device), self.log_alpha_table.to(t.device))

    def marginal_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.marginal_log_mean_coeff(t))

    def marginal_std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.marginal_log_mean_coeff(t)))

    def marginal_lambda(self, t: torch.Tensor) -> torch.Tensor:
        """λ(t) = log α − log σ."""
        log_mean = self.marginal_log_mean_coeff(t)
        return log_mean - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean))

    def inverse_lambda(self, lamb: torch.Tensor) -> torch.Tensor:
        """t(λ): log α = −½·logaddexp(0, −2λ), then the table read backwards (log α decreases with t)."""
        log_alpha = -0.5 * torch.logaddexp(torch.zeros_like(lamb), -2.0 * lamb)
        table, times = self.log_alpha_table.to(lamb.device), self.t_table.to(lamb.device)
        return interpolate(log_alpha, torch.flip(table, [0]), torch.flip(times, [0]))
