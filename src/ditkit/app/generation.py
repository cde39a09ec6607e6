"""The Generate tab's work, without any UI: check a request, sample through the library, write downloads.

Images come from :func:`ditkit.pipelines.generate_batches` on a cached model, with the same settings,
seed and batch size as the ``ditkit sample`` command shown beside them, so that command redraws them
bit for bit.
"""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DitkitError
from ..pipelines.settings import SamplingConfig
from ..precision import SAMPLING_PRECISIONS, resolve_precision
from ..progress import CallCounter
from .results import GenerateResult, write_downloads

MAX_IMAGES = 16  # per request: one person cannot exhaust the server's memory
MAX_STEPS = 1000


@dataclass
class GenerateRequest:
    model: str
    classes: list[str] | None = None  # class names (as the checkpoint stores them); None/empty: all classes
    sampler: str = "ddim"
    steps: int = 25
    cfg_scale: float = 4.0
    seed: int | None = 0  # None: a random seed (shown in the result)
    num_images: int = 8
    prompt: str = ""
    negative_prompt: str = ""
    mode: str | None = None  # UniDiffuser models: t2i, i2t, joint, ...
    image: str | None = None  # UniDiffuser image modes: an input image file
    precision: str = SamplingConfig.default("precision")  # resolved for the app's device


def _whole(value, what: str, low: int, high: int | None = None) -> int:
    """``value`` as a whole number in [low, high], or one sentence saying what was expected."""
    span = f"from {low} to {high}" if high is not None else f"≥ {low}"
    try:
        number = int(value)
        whole = number == value
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or number < low or (high is not None and number > high):
        raise DitkitError(f"the {what} must be a whole number {span}, got {value}")
    return number


def _check_numbers(request: GenerateRequest, max_images: int) -> int:
    """Validate the plain numbers; returns the seed to use (a random one when none is given)."""
    try:
        scale = float(request.cfg_scale)
    except (TypeError, ValueError):
        raise DitkitError(f"the guidance scale must be a number, got {request.cfg_scale!r}") from None
    if not math.isfinite(scale) or scale < 0:
        raise DitkitError(f"the guidance scale must be a finite number ≥ 0, got {request.cfg_scale}")
    if request.precision not in SAMPLING_PRECISIONS:
        raise DitkitError(f"the precision must be one of {', '.join(SAMPLING_PRECISIONS)}, got {request.precision!r}")
    _whole(request.num_images, "number of images", 1, max_images)
    _whole(request.steps, "number of steps", 1, MAX_STEPS)
    return random.randrange(2**31) if request.seed is None else _whole(request.seed, "seed", 0)


def _labels(conditioning, request: GenerateRequest) -> list[int] | None:
    """Class names → labels; none chosen means every class in turn."""
    if conditioning.kind in ("none", "text"):
        return None
    if conditioning.kind != "class":
        raise DitkitError(f"this app cannot sample {conditioning.kind} models yet; use ditkit's library for them")
    names = conditioning.class_names
    chosen = [c for c in (request.classes or []) if str(c).strip()]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise DitkitError(f"the model has no class {unknown[0]!r}; it knows {', '.join(names[:20])}")
    chosen = chosen or names
    return [names.index(c) for c in chosen]


def generate(request: GenerateRequest, cache, *, out_root: str | Path, max_images: int = MAX_IMAGES,
             report: Callable[[int, int], None] | None = None) -> GenerateResult:
    """Run one request; writes PNGs, a grid and a .npz into a fresh folder under ``out_root``."""
    from .models import resolve_spec

    seed = _check_numbers(request, max_images)
    spec = resolve_spec(request.model)
    model = cache.get(spec)
    folder = Path(tempfile.mkdtemp(prefix="ditkit-app-", dir=out_root))
    if model.conditioning.kind == "multimodal":
        from .uni import generate_uni

        return generate_uni(request, model, seed, folder, lock=cache.lock, report=report)
    return _generate_dit(request, spec, model, seed, folder, lock=cache.lock, device=cache.device, report=report)


def _text_inputs(model, request: GenerateRequest) -> dict:
    """A text model's prompt (empty = the null text) and negative prompt, as sampling changes."""
    if model.conditioning.kind != "text":
        return {}
    negative = (request.negative_prompt or "").strip() or None
    return {"prompts": ((request.prompt or "").strip(),), "negative_prompt": negative}


def _generate_dit(request: GenerateRequest, spec: str, model, seed: int, folder: Path, *, lock, device,
                  report) -> GenerateResult:
    from ..checkpoints import bundled_models
    from ..pipelines import SampleSettings

    conditioning, loaded = model.conditioning, model.loaded
    if model.codec is None:
        raise DitkitError("this model's codec is not available, so its samples cannot be shown as images")
    labels = _labels(conditioning, request)
    text = _text_inputs(model, request)
    n, steps = int(request.num_images), int(request.steps)
    scale = float(request.cfg_scale) if conditioning.guidance else 1.0
    # A bundled name stays a name in the command (it works on any install); a path is made absolute.
    checkpoint = spec if spec in bundled_models() else loaded.checkpoint
    settings = SampleSettings(checkpoint=checkpoint, classes=None if labels is None else tuple(labels),
                              num_samples=n, sampler=request.sampler, steps=steps, cfg_scale=scale, seed=seed,
                              precision=resolve_precision(request.precision, device), **text)
    # the whole request is one batch (the command below says --batch-size n): one report per sampler step
    counter = CallCounter(steps, report)
    with lock:
        out = loaded.generate(labels=settings.classes, num_samples=n, sampler=settings.sampler, steps=steps,
                              cfg_scale=scale, seed=seed, batch_size=n, progress=False, callback=counter,
                              precision=settings.precision, device=device, **text)  # its DiTPipeline
    captions = ([f"{text['prompts'][0] or '(no prompt)'} · #{i}" for i in range(len(out))] if text
                else _captions(conditioning, out.labels, seed, len(out)))
    pngs, downloads = write_downloads(folder, out.images, out.labels)
    command = settings.command(steps=steps, batch_size=n, npz=True, out=Path("ditkit-samples"))
    return GenerateResult(images=out.images, captions=captions, pngs=pngs, downloads=downloads, command=command,
                          seed=seed)


def _captions(conditioning, labels, seed: int, count: int) -> list[str]:
    if labels is None:
        return [f"seed {seed} · #{i}" for i in range(count)]
    return [f"{conditioning.class_names[y]} · #{i}" for i, y in enumerate(labels)]
