"""Samplers of the flow process (``flow.py``), under the common sampler contract of ``samplers.py``.

``process`` is a :class:`FlowMatching` with a grid t_K = 1 > ... > t_0 = 0; step i moves t_{i+1} → t_i, and
the denoiser gets the network's time 1000·t. The probability-flow ODE is dx/dt = v(x, t). The registry runs
these for the same names as the DDPM process's samplers (``registry.py``), each the same method on this
process: ``ddim``/``euler`` (first order), ``heun`` (EDM's 2nd order), ``dpm++`` (DPM-Solver++ 2M on
λ = log((1 − t)/t)) and ``ddpm`` (the ancestral SDE step, SDE-DPM-Solver++ 1).
"""

from __future__ import annotations

import math

import torch

from .flow import FlowMatching
from .samplers import default_noise_sampler, dpm_solver_pp_2m_update
from .state import like_first, tree_map


def _steps(process: FlowMatching):
    """(step number, i) for i = K-1 .. 0, the steps t_{i+1} → t_i, numbered 0, 1, ... in order."""
    return enumerate(range(process.num_timesteps - 1, -1, -1))


def _evaluate(denoiser, process: FlowMatching, x, t: float):
    """(the network's times (N,), its output) at flow time ``t``."""
    leaf = like_first(x)
    time = process.network_time(torch.full((leaf.shape[0],), t, dtype=torch.float32, device=leaf.device))
    return time, denoiser(x, time)


def _velocity(process: FlowMatching, x, output, t: float):
    return tree_map(lambda xl, o: process.velocity(o, xl, t), x, output)


def _denoised(process: FlowMatching, x, output, t: float, clip: bool):
    def x0(xl, o):
        d = process.denoised(o, xl, t)
        return d.clamp(-1, 1) if clip else d

    return tree_map(x0, x, output)


def _first_evaluation(denoiser, process: FlowMatching, x, t: float, step: int, callback, clip: bool,
                      want_x0: bool):
    """A step's first evaluation at (x, t), shown to ``callback`` (the sampler contract's keywords); returns
    (output, x̂_0), x̂_0 None unless wanted or shown."""
    time, output = _evaluate(denoiser, process, x, t)
    x0 = _denoised(process, x, output, t, clip) if want_x0 or callback is not None else None
    if callback is not None:
        callback(x=x, i=step, t=time, denoised=x0)
    return output, x0


@torch.no_grad()
def flow_euler_sample(denoiser, process: FlowMatching, x_T, *, generator=None, noise_sampler=None,
                      callback=None, clip_denoised: bool = False):
    """Euler on dx/dt = v: x_{t_i} = x_{t_{i+1}} + (t_i − t_{i+1}) v̂ (DDIM at η = 0 on this process)."""
    x = x_T
    for step, i in _steps(process):
        t, t_next = process.time(i + 1), process.time(i)
        output, x0 = _first_evaluation(denoiser, process, x, t, step, callback, clip_denoised, want_x0=i == 0)
        if i == 0:  # the last step lands on x̂_0 exactly (v is not needed at t = 0)
            return x0
        x = tree_map(lambda xl, v: xl + (t_next - t) * v, x, _velocity(process, x, output, t))
    return x


def flow_ddim_sample(denoiser, process: FlowMatching, x_T, *, generator=None, noise_sampler=None,
                     callback=None, eta: float = 0.0, clip_denoised: bool = False):
    """DDIM on the flow process: Euler at η = 0, the stochastic step with noise scale η otherwise."""
    if eta == 0:
        return flow_euler_sample(denoiser, process, x_T, callback=callback, clip_denoised=clip_denoised)
    return _stochastic(denoiser, process, x_T, noise_sampler or default_noise_sampler(generator), callback,
                       clip_denoised, eta)


@torch.no_grad()
def flow_heun_sample(denoiser, process: FlowMatching, x_T, *, generator=None, noise_sampler=None,
                     callback=None, clip_denoised: bool = False):
    """Heun (EDM Alg. 1) on dx/dt = v: an Euler predictor and a trapezoidal corrector per step, the last step
    Euler (to x̂_0): K steps cost 2K − 1 network evaluations."""
    x = x_T
    for step, i in _steps(process):
        t, t_next = process.time(i + 1), process.time(i)
        output, x0 = _first_evaluation(denoiser, process, x, t, step, callback, clip_denoised, want_x0=i == 0)
        if i == 0:
            return x0  # 3. last step: Euler to t = 0
        v = _velocity(process, x, output, t)
        x_euler = tree_map(lambda xl, vl: xl + (t_next - t) * vl, x, v)  # 1. Euler predictor
        v_next = _velocity(process, x_euler, _evaluate(denoiser, process, x_euler, t_next)[1], t_next)
        x = tree_map(lambda xl, a, b: xl + (t_next - t) * 0.5 * (a + b), x, v, v_next)  # 2. trapezoidal corrector
    return x


def _half_log_snr(t: float) -> float:
    """λ = log(α/σ) = log((1 − t)/t); −∞ at t = 1, +∞ at t = 0."""
    if t >= 1.0:
        return -math.inf
    return math.inf if t <= 0.0 else math.log((1 - t) / t)


@torch.no_grad()
def flow_dpm_solver_pp_sample(denoiser, process: FlowMatching, x_T, *, generator=None, noise_sampler=None,
                              callback=None, clip_denoised: bool = False):
    """DPM-Solver++ (2M) (Lu et al. 2022, Alg. 2) with α = 1 − t, σ = t: one evaluation a step; the first step
    (from σ = 1, α = 0) and, below 15 steps, the last are first order."""
    x, prev_x0, prev_h = x_T, None, None
    for step, i in _steps(process):
        t, t_next = process.time(i + 1), process.time(i)
        _, x0 = _first_evaluation(denoiser, process, x, t, step, callback, clip_denoised, True)  # 1. x̂_0 at t_{i+1}
        if i == 0:
            return x0
        h = _half_log_snr(t_next) - _half_log_snr(t)  # 2. h = λ(t_i) − λ(t_{i+1}) (∞ on the first step)
        (alpha_j, sigma_j), (_, sigma_i) = process.alpha_sigma_at(t_next), process.alpha_sigma_at(t)
        x = dpm_solver_pp_2m_update(x, x0, prev_x0, h, prev_h, alpha_j, sigma_j, sigma_i,
                                    first_order=i == 1 and process.num_timesteps < 15)  # 3-4. the 2M update
        prev_x0, prev_h = x0, h
    return x


@torch.no_grad()
def flow_sde_sample(denoiser, process: FlowMatching, x_T, *, generator=None, noise_sampler=None,
                    callback=None, clip_denoised: bool = False):
    """The ancestral (SDE) sampler: DDIM's update (Song et al. 2021, eq. 12) with the full noise, η = 1, which is
    SDE-DPM-Solver++ 1 (Lu et al. 2022): x_{t_i} = α_i x̂_0 + √(σ_i² − c²) ε̂ + c z, c = σ_i √(1 − e^{−2h})."""
    return _stochastic(denoiser, process, x_T, noise_sampler or default_noise_sampler(generator), callback,
                       clip_denoised, 1.0)


@torch.no_grad()
def _stochastic(denoiser, process: FlowMatching, x_T, noise_sampler, callback, clip_denoised: bool, eta: float):
    x = x_T
    for step, i in _steps(process):
        t, t_next = process.time(i + 1), process.time(i)
        _, x0 = _first_evaluation(denoiser, process, x, t, step, callback, clip_denoised, True)  # 1. x̂_0 at t_{i+1}
        if i == 0:
            return x0
        (alpha_j, sigma_j), (alpha_i, sigma_i) = process.alpha_sigma_at(t_next), process.alpha_sigma_at(t)
        eps = tree_map(lambda xl, d: (xl - alpha_i * d) / sigma_i, x, x0)  # 2. ε̂ = (x − α x̂_0) / σ
        # 3. c = η σ' √(1 − e^{−2h}), e^{−h} = α σ' / (α' σ) (0 from pure noise, where α = 0)
        ratio = (alpha_i * sigma_j) / (alpha_j * sigma_i)
        c = eta * sigma_j * math.sqrt(max(0.0, 1 - ratio**2))
        z = noise_sampler(x)  # 4. x' = α' x̂_0 + √(σ'² − c²) ε̂ + c z
        x = tree_map(lambda d, e, zl: alpha_j * d + math.sqrt(max(0.0, sigma_j**2 - c**2)) * e + c * zl, x0, eps, z)
    return x
