"""Singlestep DPM-Solver (Lu et al., 2022) in data-prediction form, as UniDiffuser samples with it.

The official sampler calls ``DPM_Solver(model_fn, NoiseScheduleVP('discrete'), predict_x0=True)
.sample(x_T, steps, eps=1e-3, T=1)`` with method ``'fast'``: a time-uniform grid of ``steps`` intervals
is walked in steps of order 3 (a final 2 and/or 1 makes the orders sum to ``steps``), each a singlestep
DPM-Solver-k whose intermediate times sit on the λ of the grid points it skips. So the network is
evaluated ``steps`` times.

``noise_fn(x, t)`` returns the noise prediction ε at continuous times ``t`` (B,); the solver turns it into
the data prediction D = (x − σ_t ε)/α_t. The state ``x`` may be a tensor or a tuple/dict of tensors
(UniDiffuser's image latent, CLIP token and text): every update is applied leaf by leaf.

``dpm_solver_sample`` is the sampler registry's ``dpm-solver`` (the VP process, ``vp_schedule.py``) under the
common sampler contract (``samplers.py``): the denoiser gets the network's time 1000·t, and each of the ``steps``
evaluations, one per grid point (an order-k step evaluates at its k grid points' λ), is one callback step.
"""

from __future__ import annotations

from typing import Callable

import torch

from .state import batch_size, like_first, tree_map
from .vp_schedule import DiscreteVPSchedule

__all__ = ["fast_orders", "time_uniform_grid", "dpm_solver_singlestep_sample", "dpm_solver_sample"]


def fast_orders(steps: int, order: int = 3) -> list[int]:
    """The 'fast' method's orders: 3s, then [2, 1], [1] or [2] by steps % 3 (they sum to ``steps``)."""
    if order != 3 or steps < 1:
        raise ValueError("the 'fast' order list is defined for order 3 and steps >= 1")
    k = steps // 3 + 1
    if steps % 3 == 0:
        return [3] * (k - 2) + [2, 1]
    if steps % 3 == 1:
        return [3] * (k - 1) + [1]
    return [3] * (k - 1) + [2]


def time_uniform_grid(steps: int, t_start: float = 1.0, t_end: float = 1e-3) -> torch.Tensor:
    """(steps + 1,) float32 times from t_start down to t_end, evenly spaced in t."""
    return torch.linspace(t_start, t_end, steps + 1)


def _combine(terms, like_state):
    """Σ coefficient·state, leaf by leaf; coefficients are (B,) and broadcast over each leaf's other dims."""

    def leafwise(*leaves):
        out = None
        for coef, leaf in zip(coefs, leaves):
            term = coef.view(-1, *([1] * (leaf.dim() - 1))) * leaf
            out = term if out is None else out + term
        return out

    coefs = [c for c, _ in terms]
    return tree_map(leafwise, *[s for _, s in terms])


class _Solver:
    """One sampling run: the schedule, the data-prediction model, and the three singlestep updates."""

    def __init__(self, noise_fn: Callable, schedule: DiscreteVPSchedule, callback: Callable | None):
        self.noise_fn, self.ns, self.callback = noise_fn, schedule, callback

    def data(self, x, t: torch.Tensor, point: int):
        """D(x, t) = (x − σ_t·ε(x, t)) / α_t, at the evaluation of grid point ``point``."""
        eps = self.noise_fn(x, t)
        alpha, sigma = self.ns.marginal_alpha(t), self.ns.marginal_std(t)
        d = tree_map(lambda xl, el: (xl - sigma.view(-1, *([1] * (xl.dim() - 1))) * el)
                     / alpha.view(-1, *([1] * (xl.dim() - 1))), x, eps)
        if self.callback is not None:
            self.callback(x=x, i=point, t=t, denoised=d)
        return d

    def at(self, t: torch.Tensor):
        """(log α, α, σ) at times t."""
        log_alpha = self.ns.marginal_log_mean_coeff(t)
        return log_alpha, torch.exp(log_alpha), self.ns.marginal_std(t)

    def step(self, x, s: torch.Tensor, t: torch.Tensor, order: int, point: int, r1=None, r2=None):
        """One singlestep DPM-Solver-``order`` update from s (grid point ``point``) to t (both (B,)),
        data-prediction form."""
        ns = self.ns
        lambda_s, lambda_t = ns.marginal_lambda(s), ns.marginal_lambda(t)
        h = lambda_t - lambda_s
        _, _, sigma_s = self.at(s)
        _, alpha_t, sigma_t = self.at(t)
        d_s = self.data(x, s, point)
        if order == 1:
            return _combine([(sigma_t / sigma_s, x), (-alpha_t * (torch.exp(-h) - 1.0), d_s)], x)
        phi_1 = torch.expm1(-h)
        s1 = ns.inverse_lambda(lambda_s + r1 * h)
        _, alpha_s1, sigma_s1 = self.at(s1)
        u1 = _combine([(sigma_s1 / sigma_s, x), (-alpha_s1 * torch.expm1(-r1 * h), d_s)], x)
        d_s1 = self.data(u1, s1, point + 1)
        diff_1 = tree_map(torch.sub, d_s1, d_s)
        if order == 2:
            return _combine([(sigma_t / sigma_s, x), (-alpha_t * phi_1, d_s), (-(0.5 / r1) * alpha_t * phi_1, diff_1)],
                            x)
        s2 = ns.inverse_lambda(lambda_s + r2 * h)
        _, alpha_s2, sigma_s2 = self.at(s2)
        phi_12 = torch.expm1(-r2 * h)
        phi_22 = phi_12 / (r2 * h) + 1.0
        phi_2 = phi_1 / h + 1.0
        u2 = _combine([(sigma_s2 / sigma_s, x), (-alpha_s2 * phi_12, d_s), ((r2 / r1) * alpha_s2 * phi_22, diff_1)], x)
        diff_2 = tree_map(torch.sub, self.data(u2, s2, point + 2), d_s)
        return _combine([(sigma_t / sigma_s, x), (-alpha_t * phi_1, d_s), ((1.0 / r2) * alpha_t * phi_2, diff_2)], x)


@torch.no_grad()
def dpm_solver_singlestep_sample(noise_fn: Callable, x_T, steps: int = 50, *,
                                 schedule: DiscreteVPSchedule | None = None, t_start: float = 1.0,
                                 t_end: float = 1e-3, callback: Callable | None = None):
    """Sample from x_T at t_start down to t_end in ``steps`` network evaluations (the official 'fast' method).

    ``noise_fn(x, t)`` → ε shaped like ``x`` (tensor or tuple/dict of tensors), ``t`` continuous (B,).
    ``callback(x=, i=, t=, denoised=)`` sees every evaluation (the sampler contract's keywords, ``t`` the
    continuous times, ``i`` the grid point 0 .. steps − 1).
    """
    ns = schedule or DiscreteVPSchedule()
    solver = _Solver(noise_fn, ns, callback)
    grid = time_uniform_grid(steps, t_start, t_end).to(like_first(x_T).device)  # (steps + 1,)
    ones = torch.ones(batch_size(x_T), device=grid.device)
    lambdas = ns.marginal_lambda(grid)  # (steps + 1,)
    x, i = x_T, 0
    for order in fast_orders(steps):
        h = lambdas[i + order] - lambdas[i]
        r1 = (lambdas[i + 1] - lambdas[i]) / h if order >= 2 else None
        r2 = (lambdas[i + 2] - lambdas[i]) / h if order >= 3 else None
        x = solver.step(x, ones * grid[i], ones * grid[i + order], order, i, r1, r2)
        i += order
    return x


def dpm_solver_sample(denoiser: Callable, process: DiscreteVPSchedule, x_T, *, generator=None, noise_sampler=None,
                      callback: Callable | None = None):
    """The registry's ``dpm-solver``: the official singlestep 'fast' DPM-Solver in ``process.num_timesteps``
    evaluations, ``denoiser(x, 1000·t)`` → ε. Deterministic: ``generator`` and ``noise_sampler`` are accepted for
    the common signature and unused."""

    def noise_fn(x, t):
        return denoiser(x, process.network_time(t))

    def at_point(x, i, t, denoised):
        callback(x=x, i=i, t=process.network_time(t), denoised=denoised)

    return dpm_solver_singlestep_sample(noise_fn, x_T, process.num_timesteps, schedule=process,
                                        callback=None if callback is None else at_point)
