"""Gaussian diffusion and flow matching (the math), samplers (functions of a denoiser), their registry, and guidance."""

from .flow import FlowMatching
from .gaussian import DiffusionConfig, GaussianDiffusion, create_diffusion, create_process
from .guidance import cfg_denoiser
from .noise import IndexedNoise, sample_seed
from .registry import DEFAULT_SAMPLER, DEFAULT_SAMPLERS, SAMPLERS, SamplerSpec, get_sampler, run_sampler, sample
from .samplers import ddim_sample, ddpm_sample, dpm_solver_pp_sample
from .schedules import space_timesteps
from .state import tree_map

__all__ = ["DiffusionConfig", "GaussianDiffusion", "FlowMatching", "create_diffusion", "create_process", "DEFAULT_SAMPLERS", "cfg_denoiser", "IndexedNoise", "sample_seed",
           "DEFAULT_SAMPLER", "SAMPLERS", "SamplerSpec", "get_sampler", "run_sampler", "sample", "ddim_sample", "ddpm_sample",
           "dpm_solver_pp_sample", "space_timesteps", "tree_map"]
