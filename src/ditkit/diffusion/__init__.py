"""Gaussian diffusion (the math), samplers (functions of a denoiser) and guidance."""

from .gaussian import DiffusionConfig, GaussianDiffusion, create_diffusion
from .guidance import cfg_denoiser
from .samplers import (DEFAULT_STEPS, SAMPLERS, ddim_sample, ddpm_sample, dpm_solver_pp_sample, get_sampler,
                       respacing_for, sample)
from .schedules import space_timesteps

__all__ = ["DiffusionConfig", "GaussianDiffusion", "create_diffusion", "cfg_denoiser", "DEFAULT_STEPS", "SAMPLERS",
           "ddim_sample", "ddpm_sample", "dpm_solver_pp_sample", "get_sampler", "respacing_for", "sample",
           "space_timesteps"]
