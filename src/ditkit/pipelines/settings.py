"""``SamplingSettings``: every knob of the sampling pipeline in one object (what to draw, and how)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from ..diffusion import DEFAULT_SAMPLER, DEFAULT_SAMPLERS, get_sampler
from ..errors import DitkitError

PRECISIONS = ("fp32", "bf16", "auto")


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
    precision: str = "fp32"

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
