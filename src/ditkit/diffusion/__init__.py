"""Diffusion processes (the math), samplers (plain functions of a denoiser), their registry, and guidance.

A *denoiser* is any callable ``denoiser(x_t, t) -> raw model output``; samplers know nothing of networks, and
``x_t`` may be a tensor or a tuple/dict of tensors. ``samplers``' module doc is the sampler contract.

- ``schedules``: beta schedules (linear, cosine; ``named_betas``); ``space_timesteps``, THE respacing parser
  ("250", "10,20", "ddim10", "logsnr20")
- ``gaussian``: ``DiffusionConfig`` (``process``: ``ddpm`` or ``flow``, stored in every checkpoint;
  ``create_process``), ``GaussianDiffusion``: q_sample, posterior, p_mean_variance, hybrid loss (ε-MSE weighted
  per timestep by a ``LOSS_WEIGHTINGS`` entry) and the accessors samplers read (``alpha_bar_at``, ``alpha_sigma``,
  ``half_log_snr``, ``edm_sigma``, ``eps``, ...); ``create_diffusion``
- ``flow``: ``FlowMatching``: rectified flow (x_t = (1−t)x₀ + tε; velocity or x prediction; uniform / logit-normal
  training times; SD3's time shift; the velocity-direction loss), with ``GaussianDiffusion``'s ``family`` /
  ``sample_training_t`` / ``training_losses`` interface
- ``samplers``: the contract; ``ddpm_sample``, ``ddim_sample``, ``dpm_solver_pp_sample``, and
  ``dpm_solver_pp_2m_update``, the DPM-Solver++ 2M step every process's ``dpm++`` uses
- ``heun``: ``heun_sample``: Heun's 2nd-order ODE solver (EDM Alg. 1) on the discrete process
- ``flow_samplers``: the flow process's samplers under the registry's names: ``euler``/``ddim`` (first order;
  stochastic with η > 0), ``heun`` (EDM), ``dpm++`` (2M on λ = log((1−t)/t)), ``ddpm`` (the ancestral SDE step)
- ``registry``: ``SAMPLERS``: THE registry (name → its function on each process family — ``ddpm``, ``flow``,
  ``vp`` —, default steps, spacing, options), ``DEFAULT_SAMPLERS`` (per family), ``get_sampler``,
  ``run_sampler``, ``sample``
- ``state``: sampler states of several tensors (tuple/dict; UniDiffuser): ``tree_map``, ``fixed_modalities``
- ``noise``: ``sample_seed``, ``IndexedNoise``: noise per (seed, sample index), so samples do not depend on
  batching
- ``guidance``: ``guide``, THE guidance combination (DiT's convention, scale 1 = none, and UniDiffuser's, scale
  0 = none); ``cfg_denoiser``: classifier-free guidance as a denoiser wrapper (one batched forward)
- ``vp_schedule``: SD scaled-linear betas; ``DiscreteVPSchedule`` = DPM-Solver's ``NoiseScheduleVP('discrete')``,
  the ``vp`` process family
- ``dpm_solver_singlestep``: singlestep DPM-Solver 'fast' (orders 1-3, data prediction) over tensor or dict
  states; continuous t; ``dpm_solver_sample``, the registry's ``dpm-solver``
- ``unidiffuser``: UniDiffuser's modes: per-mode guided denoisers over dict states (``img``, ``clip_img``,
  ``text``), injectable random draws (``make_draw``), ``unidiffuser_sample`` (incl. i2t2i / t2i2t)
"""

from .flow import FlowMatching
from .gaussian import DiffusionConfig, GaussianDiffusion, create_diffusion, create_process
from .guidance import cfg_denoiser, guide
from .noise import IndexedNoise, sample_seed
from .registry import DEFAULT_SAMPLER, DEFAULT_SAMPLERS, SAMPLERS, SamplerSpec, get_sampler, run_sampler, sample
from .samplers import ddim_sample, ddpm_sample, dpm_solver_pp_sample
from .schedules import space_timesteps
from .state import tree_map

__all__ = ["DiffusionConfig", "GaussianDiffusion", "FlowMatching", "create_diffusion", "create_process", "DEFAULT_SAMPLERS", "cfg_denoiser", "guide", "IndexedNoise", "sample_seed",
           "DEFAULT_SAMPLER", "SAMPLERS", "SamplerSpec", "get_sampler", "run_sampler", "sample", "ddim_sample", "ddpm_sample",
           "dpm_solver_pp_sample", "space_timesteps", "tree_map"]
