"""The Generate tab for UniDiffuser models: a mode and its input (a prompt, an image, or nothing) → images
and/or captions, through ``UniDiffuser.generate``, with the ``ditkit uni …`` command that redraws them."""

from __future__ import annotations

import shlex
from pathlib import Path

from ..diffusion.unidiffuser import network_evaluations
from ..errors import DitkitError
from ..precision import resolve_precision
from ..progress import CallCounter

CHAINED_MODES = ("i2t2i", "t2i2t")  # two sampling passes: image → caption → image, text → image → caption


def _inputs(request, needs: str | None, notes: list[str]) -> dict:
    """The mode's input from the request: a prompt, an image file, or nothing."""
    from ..pipelines.uni_folder import read_images

    prompt = (request.prompt or "").strip()
    if needs == "prompts":
        if not prompt:
            raise DitkitError(f"mode {request.mode} turns a prompt into an image: type a prompt")
        return {"prompts": [prompt]}
    if needs == "images":
        if not request.image:
            raise DitkitError(f"mode {request.mode} starts from an image: upload one")
        return {"images": read_images([request.image], notes)}
    return {}


def _command(model, request, seed: int, n: int, precision: str) -> str:
    # A bundled name stays a name in the command (it works on any install); a path is absolute.
    parts = ["ditkit", "uni", request.mode, "--checkpoint", model.name or model.checkpoint]
    if request.mode in ("t2i", "t2i2t"):
        parts += ["--prompt", request.prompt.strip()]
    if request.mode in ("i2t", "i2t2i"):
        parts += ["--image", str(request.image)]
    from ..pipelines.settings import SamplingConfig

    sampler = str(request.sampler) if model.model.family == "flow" else None  # the official: its own solver
    parts += ["-n", str(n), *SamplingConfig.command_args(sampler=sampler, steps=int(request.steps),
                                                         cfg_scale=float(request.cfg_scale), seed=seed,
                                                         batch_size=n, precision=precision)]
    return shlex.join([*parts, "--out", "ditkit-uni"])


def generate_uni(request, model, seed: int, folder: Path, *, lock, report=None):
    """Sample a UniDiffuser model for the app; returns a ``results.GenerateResult``."""
    from ..imaging import to_uint8
    from .results import GenerateResult, write_downloads

    cond = model.conditioning
    if request.mode not in cond.modes:
        raise DitkitError(f"choose a mode for this UniDiffuser model: {', '.join(cond.modes)}")
    notes: list[str] = []
    inputs = _inputs(request, cond.mode_inputs.get(request.mode), notes)
    n, steps = int(request.num_images), int(request.steps)
    sampler = request.sampler if model.model.family == "flow" else None  # the official model: its own solver
    sampling = model.model.sampling_settings(sampler, steps, float(request.cfg_scale))
    precision = resolve_precision(request.precision, model.model.device)
    # one report per network evaluation (UniDiffuser's callback sees each)
    counter = CallCounter(network_evaluations(request.mode, steps, sampling["sampler"]), report)
    with lock:
        out = model.model.generate(request.mode, n=n, seed=seed, callback=counter, precision=precision, **sampling,
                                   **inputs)  # one pass: the command says --batch-size n
    images = None if out.images is None else to_uint8(out.images)
    texts = list(out.captions or [])
    pngs, downloads = ([], []) if images is None else write_downloads(folder, images, None)
    if texts:
        (folder / "captions.txt").write_text("".join(f"{c}\n" for c in texts), encoding="utf-8")
        downloads.append(folder / "captions.txt")
    count = 0 if images is None else len(images)
    captions = texts[:count] if len(texts) >= count else [f"seed {seed} · #{i}" for i in range(count)]
    return GenerateResult(images=images, captions=captions, pngs=pngs, downloads=downloads,
                          command=_command(model, request, seed, n, precision), seed=seed, texts=texts)
