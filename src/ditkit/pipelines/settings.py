"""The sampling knobs: ``SamplingConfig`` (what a user gives, declared once: the flags of ``sample``, ``uni``,
``t2i-eval`` and ``uni-eval``, the app's inputs and the recorded commands) and ``SamplingSettings`` (every knob
of the pipeline, resolved: what :func:`~ditkit.pipelines.generate` draws with)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from ..diffusion import DEFAULT_SAMPLER, DEFAULT_SAMPLERS, SAMPLERS, get_sampler
from ..diffusion.unidiffuser import OFFICIAL_SAMPLER
from ..errors import DitkitError
from ..knobs import flag_name, knob
from ..precision import SAMPLING_PRECISIONS as PRECISIONS

SAMPLER_NAMES = tuple(dict.fromkeys((*SAMPLERS, OFFICIAL_SAMPLER)))  # the registry's, the official UniDiffuser's


def _sampler_help() -> str:
    about = "; ".join(f"{name} ({spec.about})" for name, spec in SAMPLERS.items())
    steps = ", ".join(f"{name} {spec.default_steps}" + (f" (flow {spec.flow_steps})" if spec.flow_steps else "")
                      for name, spec in SAMPLERS.items())
    official = "" if OFFICIAL_SAMPLER in SAMPLERS else f"; {OFFICIAL_SAMPLER}: the official UniDiffuser's solver"
    return (f"{about}{official}. Default: the one the "
            f"checkpoint records it samples best with, else {DEFAULT_SAMPLERS['ddpm']} for DDPM DiTs, "
            f"{DEFAULT_SAMPLERS['flow']} for flow models, {OFFICIAL_SAMPLER} for the official UniDiffuser "
            f"(a sampler's default steps: {steps})")


@dataclass(frozen=True)
class SamplingConfig:
    """The user-facing sampling knobs, declared once with :func:`ditkit.knobs.knob`.

    Every sampling command takes its flags from these fields (``cli/sampling.py``; a command takes the ones
    that apply to its models), the app's Generate tab its inputs' labels, and ``ditkit sample``'s and ``ditkit
    uni``'s recorded commands their flags (:meth:`command_args`). A ``None`` default means "what the checkpoint
    records it samples best with, else its process's default" (``SampleSettings.resolved_for``,
    ``UniDiffuser.sampling_settings``). Metadata beyond ``knob``'s: ``label`` (the app's), ``record`` (False: not
    in a recorded command: it does not change what is drawn, or the machine decides it).
    """

    sampler: str | None = knob(None, _sampler_help(), choices=SAMPLER_NAMES, label="Sampler")
    steps: int | None = knob(None, "sampling steps (default: the checkpoint's recorded steps when it uses the "
                             "recorded sampler, else the sampler's default)", label="Steps")
    cfg_scale: float | None = knob(None, "classifier-free guidance scale, in each model's own convention: a DiT's "
                                   "1 = none (the paper: 1.5 for FID, 4 for visuals), a UniDiffuser's 0 = none "
                                   "(the official model: 7); default: the checkpoint's recorded scale, else its "
                                   "process's default (a DiT: none)",
                                   aliases=("--scale",), metavar="SCALE", label="Guidance scale")
    guided_channels: int | None = knob(None, "DiTs: guide only the first K channels (3 reproduces the official "
                                       "code; default: all, the standard form)", metavar="K")
    eta: float | None = knob(None, "DDIM's noise: 0 deterministic (default), 1 ancestral (ddim only)")
    seed: int = knob(0, "same seed and inputs → same samples (per sample index)", label="Seed")
    batch_size: int = knob(50, "most samples per forward pass (per process); a smaller request runs at its own "
                           "size. 50: uni-eval's scores depend on its batches (one seed each), and its measured "
                           "ones used 50")
    precision: str = knob("auto", "the network's arithmetic: auto (bf16 where the CPU or GPU does it natively, "
                          "about twice as fast; else fp32), fp32 (the official code's, bit for bit) or bf16 autocast"
                          "; a run records the one auto chose", choices=PRECISIONS, label="Precision")
    device: str | None = knob(None, "cpu, cuda, cuda:1 … (default: cuda when available, else cpu, so a bare "
                              "command uses the GPU where there is one; samples differ slightly between devices)",
                              record=False)
    progress: bool = knob(True, "do not show progress", flag="--no-progress", record=False)

    @classmethod
    def knobs(cls, names=None) -> list:
        """The fields, in declaration order (``names``: only these)."""
        found = [f for f in fields(cls) if names is None or f.name in names]
        unknown = set(names or ()) - {f.name for f in found}
        if unknown:
            raise ValueError(f"not a sampling knob: {sorted(unknown)}")
        return found

    @classmethod
    def default(cls, name: str):
        return next(f.default for f in fields(cls) if f.name == name)

    @classmethod
    def command_args(cls, **values) -> list[str]:
        """The flags that set ``values`` (knob name → value; None: left out), in declaration order, for a
        recorded command. ``progress`` and ``device`` are never recorded."""
        parts = []
        for f in cls.knobs():
            value = values.get(f.name)
            if f.name in values and value is not None and f.metadata.get("record", True):
                parts += [flag_name(f), str(value)]
        return parts


@dataclass(frozen=True)
class SamplingSettings:
    """What :func:`~ditkit.pipelines.generate` draws.

    ``labels``: class labels, one sample each (with ``num_samples`` too: cycled); ``num_samples`` alone
    spreads the samples evenly over the classes (sample i gets class i mod K); neither: one sample per
    class. ``sampler``: a name in ``ditkit.diffusion.SAMPLERS``; ``steps`` None takes the registry's
    default. ``cfg_scale`` 1 = no guidance; ``guided_channels`` None guides every ε channel (3 = the
    official code's form). ``batch_size``: the most samples per forward pass (a smaller request runs at
    its own size). ``options``: the sampler's own keywords, e.g. ``{"eta": 0.5}`` for DDIM.
    ``precision``: the network's arithmetic — ``fp32`` (the default: the official code's, bit-for-bit
    reproducible against it), ``bf16`` (autocast; the sampler's own arithmetic stays fp32) or ``auto``
    (bf16 where the hardware does it natively, ``ditkit.precision``).
    """

    labels: tuple[int, ...] | None = None
    num_samples: int | None = None
    sampler: str | None = None  # None: the model's process's default (DEFAULT_SAMPLERS)
    steps: int | None = None
    cfg_scale: float = 1.0
    guided_channels: int | None = None
    seed: int = 0
    batch_size: int = 32
    options: Mapping = field(default_factory=dict)
    prompts: tuple[str, ...] | None = None  # text models: sample i gets prompt i mod P ("" = the null text)
    negative_prompt: str | None = None  # text models: guide away from this instead of the null text
    precision: str = "fp32"  # the library's: exact; the commands' default is SamplingConfig's (auto)

    @classmethod
    def build(cls, settings: "SamplingSettings | None" = None, **changes) -> "SamplingSettings":
        """``settings`` (or the defaults) with ``changes``; an unknown name is a DitkitError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise DitkitError(f"unknown sampling setting {unknown[0]!r}; the settings are {', '.join(sorted(names))}")
        if "labels" in changes and changes["labels"] is not None:
            changes["labels"] = tuple(int(y) for y in changes["labels"])
        if "prompts" in changes and changes["prompts"] is not None:
            changes["prompts"] = tuple(str(p) for p in changes["prompts"])
        return replace(settings or cls(), **changes)

    def for_process(self, family: str) -> "SamplingSettings":
        """These settings with the sampler and steps resolved for a ``family`` process (``ddpm``, ``flow``):
        the registry's defaults are the one place they are decided."""
        sampler = self.sampler or DEFAULT_SAMPLERS[family]
        steps = get_sampler(sampler).steps_for(family) if self.steps is None else int(self.steps)
        return replace(self, sampler=sampler, steps=steps)

    @property
    def resolved_steps(self) -> int:
        """``steps``, or the DDPM default of the sampler (``for_process`` resolves for any process)."""
        return self.for_process("ddpm").steps

    def check(self) -> None:
        """The model-independent checks (DitkitError, before any work)."""
        spec = get_sampler(self.sampler or DEFAULT_SAMPLER)
        spec.check_options(self.sampler or DEFAULT_SAMPLER, dict(self.options))
        for name, value in [("guidance scale", self.cfg_scale), *self.options.items()]:
            if isinstance(value, float) and not math.isfinite(value):
                raise DitkitError(f"the {name} must be a finite number, got {value}")
        if self.cfg_scale is None or self.cfg_scale < 0:
            raise DitkitError(f"the guidance scale must be a number ≥ 0, got {self.cfg_scale}")
        if int(self.seed) < 0:
            raise DitkitError(f"the seed must be ≥ 0, got {self.seed}")
        if self.precision not in PRECISIONS:
            raise DitkitError(f"unknown sampling precision {self.precision!r}; choose {', '.join(PRECISIONS)}")
        if self.batch_size < 1:
            raise DitkitError(f"the batch size must be at least 1, got {self.batch_size}")
        if self.num_samples is not None and int(self.num_samples) < 1:
            raise DitkitError(f"the number of samples must be at least 1, got {self.num_samples}")


def recorded_sampling(recorded: dict, family: str, *, sampler: str | None = None, steps: int | None = None,
                      cfg_scale: float | None = None) -> tuple[str, int, float]:
    """(sampler, steps, guidance scale): the given ones, else what a checkpoint ``recorded`` it samples best with
    (its ``extra.sampling``; the recorded steps only go with the recorded sampler), else the registry's defaults
    for a ``family`` process and no guidance."""
    sampler = sampler or recorded.get("sampler") or DEFAULT_SAMPLERS[family]
    if steps is None:
        steps = recorded.get("steps") if sampler == recorded.get("sampler") else None
        steps = get_sampler(sampler).steps_for(family) if steps is None else int(steps)
    cfg = cfg_scale if cfg_scale is not None else float(recorded.get("cfg_scale", 1.0))
    return sampler, steps, cfg
