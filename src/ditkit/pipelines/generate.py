"""``generate``: model + diffusion + sampler + guidance + codec → images.

Every sample's randomness comes from its own ``torch.Generator`` seeded from ``(seed, global index)``
(``diffusion.noise.IndexedNoise``): the initial noise and each ancestral step's fresh noise are drawn
per sample. So a sample does not depend on which batch, rank, or resumed run produced it, nor on how
many samples are drawn beside it — only on the seed and its index — and a batch is sized to the
request (8 samples cost 8 rows, not a padded 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ..diffusion import SAMPLERS, DiffusionConfig, IndexedNoise, get_sampler, run_sampler, sample_seed
from ..errors import DitkitError
from ..imaging import to_uint8
from ..precision import in_precision
from ..progress import bar_callback, chain_callbacks, progress_bar
from .labels import resolve_labels
from .settings import SamplingSettings
from .text import check_conditioning, is_text_model, plan_prompts

__all__ = ["SAMPLERS", "GeneratedSamples", "SamplingPlan", "generate", "generate_batches", "plan_sampling",
           "sample_seed"]


@dataclass
class GeneratedSamples:
    """A set of samples, in the order of ``indices``.

    ``images``: uint8 numpy array (N, H, W, C) — None when no codec was given (latents only).
    ``latents``: float32 CPU tensor (N, C, h, w), the sampler's output before decoding.
    ``labels``: list of class labels (None for an unconditional model). ``indices``: global sample indices.
    """

    images: np.ndarray | None
    latents: torch.Tensor
    labels: list[int] | None
    indices: list[int]

    def __len__(self) -> int:
        return len(self.indices)


def effective_diffusion_config(diffusion_config: dict | None, *, learn_sigma: bool) -> dict:
    """The process the model was trained on: the checkpoint's settings over the defaults (1000 linear
    steps); the model, not the stored settings, decides whether a variance is predicted."""
    return DiffusionConfig.from_dict(diffusion_config, learn_sigma=learn_sigma).to_dict()


def _check_guidance(model, settings: SamplingSettings) -> None:
    config = model.config
    if settings.cfg_scale != 1.0 and config.num_classes == 0 and not is_text_model(model):
        raise DitkitError("classifier-free guidance needs a class-conditional model; this one is "
                          "unconditional, so leave the guidance scale at 1")
    k = settings.guided_channels
    if k is not None and not 1 <= k <= config.in_channels:
        raise DitkitError(f"guided channels must be between 1 and {config.in_channels} (the model's input "
                          f"channels), got {k}")


def check_codec_fits(model, codec) -> None:
    """The codec's latent space must be the model's input space."""
    if codec is not None and codec.latent_channels != model.config.in_channels:
        raise DitkitError(f"the codec makes {codec.latent_channels}-channel latents but the model takes "
                          f"{model.config.in_channels} channels; pick a matching --vae")


@dataclass
class SamplingPlan:
    """A checked sampling request: the settings, the run's size, each sample's label, the respaced process."""

    settings: SamplingSettings
    total: int
    labels: list[int] | None
    process: object
    text: object = None  # text models: a pipelines.text.PromptPlan (each sample's prompt, the text encoder)


def plan_sampling(model, settings: SamplingSettings, *, codec=None, diffusion_config: dict | None = None,
                  text_codec=None) -> SamplingPlan:
    """Check a request against the model and codec (DitkitError on bad input) before any work.

    ``text_codec``: a text model's frozen text encoder (``pipelines.text.load_text_codec``)."""
    settings.check()
    check_conditioning(model, classes=settings.labels, prompts=settings.prompts)
    text = None
    if is_text_model(model):
        text = plan_prompts(settings.prompts, settings.num_samples, text_codec, settings.negative_prompt)
        total, labels = len(text.prompts), None
    else:
        total, labels = resolve_labels(model.config.num_classes, settings.labels, settings.num_samples)
    _check_guidance(model, settings)
    check_codec_fits(model, codec)
    config = DiffusionConfig.from_dict(diffusion_config, learn_sigma=model.config.learn_sigma)
    settings = settings.for_process(config.process)  # the sampler and steps this model's process defaults to
    process = get_sampler(settings.sampler).process(settings.steps, config)  # refuses steps outside 1..T
    return SamplingPlan(settings, total, labels, process, text)


def generate_batches(model, settings: SamplingSettings | None = None, *, codec=None, diffusion_config=None,
                     device=None, progress: bool = True, sample_indices: Sequence[int] | None = None,
                     text_codec=None, callback=None, **changes) -> Iterator[GeneratedSamples]:
    """Like :func:`generate`, but yields one :class:`GeneratedSamples` per batch as soon as it is done.

    The request is checked when called, before the first batch is asked for.
    """
    plan = plan_sampling(model, SamplingSettings.build(settings, **changes), codec=codec,
                         diffusion_config=diffusion_config, text_codec=text_codec)
    indices = list(range(plan.total)) if sample_indices is None else [int(i) for i in sample_indices]
    bad = [i for i in indices if not 0 <= i < plan.total]
    if bad:
        raise DitkitError(f"sample index {bad[0]} is outside the run's {plan.total} samples")
    return _batches(model, plan, indices, codec=codec, device=device, progress=progress, callback=callback)


def _draw(model, plan: SamplingPlan, batch_indices: list[int], device, callback=None) -> torch.Tensor:
    """The latents of one batch: exactly ``len(batch_indices)`` rows, noise drawn per sample index."""
    from ..diffusion.guidance import cfg_denoiser

    s, config = plan.settings, model.config
    noise = IndexedNoise(s.seed, batch_indices)
    x_T = noise.initial((config.in_channels, config.input_size, config.input_size), device=device,
                        dtype=next(model.parameters()).dtype)
    y = uncond = None
    if plan.labels is not None:
        y = torch.tensor([plan.labels[i] for i in batch_indices], dtype=torch.long, device=device)
    if plan.text is not None:  # the prompts, and the null text (or negative prompt) to guide away from
        y, uncond = plan.text.condition(batch_indices, device)
    # guidance runs the conditional and null halves as one batched forward
    denoiser = cfg_denoiser(in_precision(model, s.precision, device), y, s.cfg_scale, guided_channels=s.guided_channels,
                            null_class=getattr(model, "null_class", None), uncond=uncond)
    return run_sampler(s.sampler, denoiser, plan.process, x_T, noise_sampler=noise, callback=callback, **s.options)


def _batches(model, plan: SamplingPlan, indices: list[int], *, codec, device, progress,
             callback) -> Iterator[GeneratedSamples]:
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training  # e.g. a model mid-training: put it back as it was
    model.eval()
    size = plan.settings.batch_size
    one_batch = len(indices) <= size  # one batch: progress per sampling step; several: per image
    sampler = plan.settings.sampler
    bar = progress_bar(total=len(indices), desc=f"sampling ({sampler})", unit="img", disable=not progress or one_batch)
    steps = progress_bar(total=plan.process.num_timesteps, desc=sampler, unit="step", leave=False,
                         disable=not progress or not one_batch)
    each_step = chain_callbacks(bar_callback(steps) if progress and one_batch else None, callback)
    try:
        for start in range(0, len(indices), size):
            batch_indices = indices[start:start + size]  # a short request is one short batch: no padding
            with torch.inference_mode():
                latents = _draw(model, plan, batch_indices, device, each_step)
                images = None if codec is None else to_uint8(codec.decode(latents))
                latents = latents.float().cpu()
            bar.update(len(batch_indices))
            labels = None if plan.labels is None else [plan.labels[i] for i in batch_indices]
            # clone outside inference mode: callers get ordinary tensors they may modify in place
            yield GeneratedSamples(images=images, latents=latents.clone(), labels=labels, indices=batch_indices)
    finally:
        steps.close()
        bar.close()
        model.train(was_training)


def generate(model, settings: SamplingSettings | None = None, *, codec=None, diffusion_config: dict | None = None,
             device=None, progress: bool = True, sample_indices: Sequence[int] | None = None,
             text_codec=None, callback=None, **changes) -> GeneratedSamples:
    """Sample images from a DiT: ``generate(model, SamplingSettings(...), codec=...)``.

    ``settings`` say what to draw (see :class:`SamplingSettings`); its fields may also be given (or
    overridden) as keywords: ``generate(model, labels=[3, 5], sampler="dpm++", cfg_scale=4, codec=c)``.
    ``codec`` decodes latents to images (None: latents only). ``diffusion_config``: the checkpoint's
    diffusion settings. ``sample_indices``: which of the run's global sample indices to draw (default all).
    Text models take ``prompts`` (and ``negative_prompt``) instead of labels, and their ``text_codec``.
    ``progress``: a bar (per step for one batch, per image for several); ``callback(x=, i=, t=, denoised=)``:
    every sampler step of every batch (the sampler contract, ``ditkit.diffusion.samplers``).

    Sample i depends only on the seed and i. Drawn in a batch of the same size it is bit-identical
    whichever batch, rank or resumed run draws it; in a batch of another size it can differ by float
    rounding (the network's kernels depend on the batch shape), i.e. at most a level in rare pixels.
    """
    parts = list(generate_batches(model, settings, codec=codec, diffusion_config=diffusion_config, device=device,
                                  progress=progress, sample_indices=sample_indices, text_codec=text_codec,
                                  callback=callback, **changes))
    if not parts:
        raise DitkitError("there are no samples to draw")
    images = None if parts[0].images is None else np.concatenate([p.images for p in parts])
    labels = None if parts[0].labels is None else [y for p in parts for y in p.labels]
    return GeneratedSamples(images=images, latents=torch.cat([p.latents for p in parts]), labels=labels,
                            indices=[i for p in parts for i in p.indices])
