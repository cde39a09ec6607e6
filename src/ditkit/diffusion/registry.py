"""THE sampler registry: name → function, default step count, step spacing and accepted options.

The pipeline, the CLI (``--sampler`` choices, ``--steps`` help) and ``sample()`` all read this table;
a new sampler is one file with a function of the common signature (see ``samplers.py``) plus one line
here. Functions are named by ``"module:function"`` inside ``ditkit.diffusion`` and imported on use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch

from ..errors import DitkitError
from .gaussian import DiffusionConfig, GaussianDiffusion, create_process
from .schedules import has_ddim_stride

COMMON_KEYWORDS = ("generator", "noise_sampler", "callback")  # every sampler takes these


@dataclass(frozen=True)
class SamplerSpec:
    """How to run one sampler: the same method on each process family (``flow``, ``vp``: its form there)."""

    target: str | None  # "module:function" in ditkit.diffusion, on the DDPM process (None: not there)
    default_steps: int
    spacing: str  # "uniform" (evenly strided), "ddim" (integer stride when one fits), "logsnr"
    options: tuple[str, ...] = ("clip_denoised",)  # its own keywords besides COMMON_KEYWORDS
    about: str = ""
    flow: str | None = None  # "module:function" on the flow process (None: DDPM only)
    flow_steps: int | None = None  # default steps on the flow process (None: default_steps)
    vp: str | None = None  # "module:function" on the VP process (UniDiffuser's; None: not there)

    def target_for(self, family: str) -> str | None:
        return {"flow": self.flow, "vp": self.vp}.get(family, self.target)

    def function_for(self, family: str):
        module, name = self.target_for(family).split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)

    @property
    def function(self):
        return self.function_for("ddpm")

    def steps_for(self, family: str) -> int:
        return self.flow_steps if family == "flow" and self.flow_steps else self.default_steps

    def respacing(self, steps: int, diffusion_steps: int = 1000) -> str:
        """The respacing string for ``steps`` steps of a ``diffusion_steps``-step process."""
        if not 1 <= steps <= diffusion_steps:
            raise DitkitError(f"steps must be between 1 and {diffusion_steps}, got {steps}")
        if self.spacing == "logsnr" and steps >= 2:
            return f"logsnr{steps}"
        if self.spacing == "ddim" and has_ddim_stride(diffusion_steps, steps):
            return f"ddim{steps}"
        return str(steps)

    def process(self, steps: int | None = None, config: DiffusionConfig | None = None):
        """The process this sampler runs on (``steps`` None: its default): the respaced DDPM process, or the
        flow process's grid of ``steps`` steps."""
        config = config or DiffusionConfig()
        if self.target_for(config.process) is None:
            names = ", ".join(n for n, s in SAMPLERS.items() if s.target_for(config.process))
            raise DitkitError(f"this sampler does not run on a {config.process} model (its samplers: {names})")
        steps = self.steps_for(config.process) if steps is None else int(steps)
        if config.process == "flow":
            if not 1 <= steps <= 10_000:
                raise DitkitError(f"steps must be between 1 and 10000, got {steps}")
            return create_process(config, steps)
        return create_process(config, self.respacing(steps, config.diffusion_steps))

    def check_options(self, name: str, options: dict) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(self.options) or "none"
            raise DitkitError(f"the {name} sampler has no option {unknown[0]!r} (its options: {accepted})")


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec("samplers:ddpm_sample", 250, "uniform", about="ancestral, the paper's",
                        flow="flow_samplers:flow_sde_sample"),
    "ddim": SamplerSpec("samplers:ddim_sample", 50, "ddim", ("eta", "clip_denoised"), "deterministic at eta 0",
                        flow="flow_samplers:flow_ddim_sample", flow_steps=20),
    "dpm++": SamplerSpec("samplers:dpm_solver_pp_sample", 20, "logsnr", about="DPM-Solver++ 2M, fewest steps",
                         flow="flow_samplers:flow_dpm_solver_pp_sample", flow_steps=10),
    "heun": SamplerSpec("heun:heun_sample", 25, "logsnr", about="Heun's 2nd-order ODE solver (EDM), 2 calls a step",
                        flow="flow_samplers:flow_heun_sample", flow_steps=10),
    "euler": SamplerSpec(None, 20, "uniform", about="Euler's ODE step (flow models)",
                         flow="flow_samplers:flow_euler_sample"),
    "dpm-solver": SamplerSpec(None, 50, "uniform", (), "singlestep DPM-Solver 'fast' (the official UniDiffuser's)",
                              vp="dpm_solver_singlestep:dpm_solver_sample"),
}


# The default everywhere (CLI, pipelines, app): the paper's 250-step DDPM. On the bundled mnist-dit the
# 20-step DPM-Solver++ beats it under guidance (FID 37.9 vs 60.2 at cfg 4) but not unguided (71.3 vs 49.1 at
# cfg 1, the default scale), so fewer steps are not a free default (docs/performance.md).
DEFAULT_SAMPLER = "ddpm"
# A flow model's default: Heun, 10 steps (19 evaluations) — docs/recipe.md measures it against 250 Euler steps.
# The VP process (UniDiffuser's) has the official sampler only.
DEFAULT_SAMPLERS = {"ddpm": DEFAULT_SAMPLER, "flow": "heun", "vp": "dpm-solver"}


def get_sampler(name: str) -> SamplerSpec:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise DitkitError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}") from None


def run_sampler(name: str, denoiser, process, x_T, *, generator=None, noise_sampler=None, callback=None,
                **options):
    """Run sampler ``name`` on ``process`` (its family picks the implementation) from ``x_T``; options it does
    not take are a DitkitError. ``callback(x=, i=, t=, denoised=)`` sees every step (``samplers.py``)."""
    spec = get_sampler(name)
    spec.check_options(name, options)
    family = getattr(process, "family", "ddpm")
    if spec.target_for(family) is None:
        raise DitkitError(f"the {name} sampler does not run on a {family} model")
    return spec.function_for(family)(denoiser, process, x_T, generator=generator, noise_sampler=noise_sampler,
                                     callback=callback, **options)


def sample(denoiser, x_T, *, sampler: str = DEFAULT_SAMPLER, steps: int | None = None, config: DiffusionConfig | None = None,
           generator: torch.Generator | None = None, noise_sampler=None, callback=None, **options):
    """Build the process ``sampler`` prefers for ``steps`` (default: the registry's) and run it."""
    process = get_sampler(sampler).process(steps, config)
    return run_sampler(sampler, denoiser, process, x_T, generator=generator, noise_sampler=noise_sampler,
                       callback=callback, **options)
