"""``generate``: model + diffusion + sampler + guidance + codec → images.

Every sample's randomness comes from its own ``torch.Generator`` seeded from ``(seed, global index)``:
the initial noise and each ancestral step's fresh noise are drawn per sample. So a sample does not
depend on which batch, rank, or resumed run produced it — only on the seed and its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..diffusion import SAMPLERS, DiffusionConfig, get_sampler, run_sampler
from ..diffusion.noise import sample_seed
from ..errors import DitkitError


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


def sample_generators(seed: int, indices: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator(device="cpu").manual_seed(sample_seed(seed, i)) for i in indices]


def _per_sample_randn(generators: list[torch.Generator], shape, padding: int = 0, *, device,
                      dtype) -> torch.Tensor:
    """One N(0, I) draw per generator, plus ``padding`` zero rows (batch filler, discarded)."""
    # Drawn on the CPU so the same seed gives the same noise on every device.
    rows = [torch.randn(tuple(shape), generator=g) for g in generators]
    rows += [torch.zeros(tuple(shape))] * padding
    return torch.stack(rows).to(device=device, dtype=dtype)


def resolve_labels(num_classes: int, labels: Sequence[int] | None, num_samples: int | None) -> tuple[int, list[int] | None]:
    """The run's size and per-sample labels (label of global sample i), checked against the model.

    Class-conditional: ``labels`` alone gives one sample per label; ``num_samples`` alone spreads the
    samples evenly over all classes (sample i gets class i mod K); both cycle through ``labels``.
    Unconditional (``num_classes == 0``): only ``num_samples``.
    """
    if num_samples is not None and int(num_samples) < 1:
        raise DitkitError(f"the number of samples must be at least 1, got {num_samples}")
    if num_classes == 0:
        if labels is not None:
            raise DitkitError("this model is unconditional (num_classes 0): it takes no class labels; "
                              "ask for --num-samples instead")
        if num_samples is None:
            raise DitkitError("say how many samples to draw (--num-samples) for this unconditional model")
        return int(num_samples), None
    if labels is not None:
        labels = [int(y) for y in labels]
        if not labels:
            raise DitkitError("the list of class labels is empty")
        bad = [y for y in labels if not 0 <= y < num_classes]
        if bad:
            raise DitkitError(f"class label {bad[0]} is out of range: this model has {num_classes} classes "
                              f"(0..{num_classes - 1})")
        n = len(labels) if num_samples is None else int(num_samples)
        return n, [labels[i % len(labels)] for i in range(n)]
    if num_samples is None:
        raise DitkitError("give class labels (--classes) or a number of samples (--num-samples)")
    n = int(num_samples)
    return n, [i % num_classes for i in range(n)]


def make_sampling_diffusion(sampler: str, steps: int | None, diffusion_config: dict | None, *,
                            learn_sigma: bool):
    """The respaced process ``sampler`` runs on, built from the checkpoint's diffusion settings."""
    config = DiffusionConfig.from_dict(effective_diffusion_config(diffusion_config, learn_sigma=learn_sigma))
    return get_sampler(sampler).process(steps, config)  # refuses steps outside 1..total


def effective_diffusion_config(diffusion_config: dict | None, *, learn_sigma: bool) -> dict:
    """The process the model was trained on: the checkpoint's settings over the defaults (1000 linear
    steps); the model, not the stored settings, decides whether a variance is predicted."""
    from ..diffusion import DiffusionConfig

    config = DiffusionConfig().to_dict()
    config.update({k: v for k, v in (diffusion_config or {}).items() if k in config})
    config["learn_sigma"] = learn_sigma
    return config


def _check_guidance(model, cfg_scale: float, guided_channels: int | None) -> None:
    config = model.config
    if cfg_scale is None or cfg_scale < 0:
        raise DitkitError(f"the guidance scale must be a number ≥ 0, got {cfg_scale}")
    if cfg_scale != 1.0 and config.num_classes == 0:
        raise DitkitError("classifier-free guidance needs a class-conditional model; this one is "
                          "unconditional, so leave the guidance scale at 1")
    if guided_channels is not None and not 1 <= guided_channels <= config.in_channels:
        raise DitkitError(f"guided channels must be between 1 and {config.in_channels} (the model's input "
                          f"channels), got {guided_channels}")


def check_codec_fits(model, codec) -> None:
    """The codec's latent space must be the model's input space."""
    if codec is not None and codec.latent_channels != model.config.in_channels:
        raise DitkitError(f"the codec makes {codec.latent_channels}-channel latents but the model takes "
                          f"{model.config.in_channels} channels; pick a matching --vae")


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → uint8 (N, H, W, C), rounding to the nearest level."""
    images = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).contiguous().numpy()


@dataclass
class SamplingPlan:
    """A checked sampling request: the run's size, each sample's label, the respaced process."""

    total: int
    labels: list[int] | None
    diffusion: object


def plan_sampling(model, *, labels=None, num_samples=None, codec=None, sampler: str = "ddpm",
                  steps: int | None = None, cfg_scale: float = 1.0, guided_channels: int | None = None,
                  seed: int = 0, batch_size: int = 32, diffusion_config: dict | None = None) -> SamplingPlan:
    """Check a request against the model and codec (DitkitError on bad input) before any work."""
    config = model.config
    total, all_labels = resolve_labels(config.num_classes, labels, num_samples)
    if int(seed) < 0:
        raise DitkitError(f"the seed must be ≥ 0, got {seed}")
    if batch_size < 1:
        raise DitkitError(f"the batch size must be at least 1, got {batch_size}")
    _check_guidance(model, cfg_scale, guided_channels)
    check_codec_fits(model, codec)
    diffusion = make_sampling_diffusion(sampler, steps, diffusion_config, learn_sigma=config.learn_sigma)
    return SamplingPlan(total, all_labels, diffusion)


def generate_batches(model, *, labels=None, num_samples=None, codec=None, sampler: str = "ddpm",
                     steps: int | None = None, cfg_scale: float = 1.0, guided_channels: int | None = None,
                     seed: int = 0, batch_size: int = 32, diffusion_config: dict | None = None,
                     progress: bool = True, sample_indices: Sequence[int] | None = None,
                     eta: float = 0.0, clip_denoised: bool = False, device=None,
                     pad_batches: bool = True) -> Iterator[GeneratedSamples]:
    """Like :func:`generate`, but yields one :class:`GeneratedSamples` per batch as soon as it is done.

    The request is checked when called, before the first batch is asked for.
    """
    plan = plan_sampling(model, labels=labels, num_samples=num_samples, codec=codec, sampler=sampler, steps=steps,
                         cfg_scale=cfg_scale, guided_channels=guided_channels, seed=seed, batch_size=batch_size,
                         diffusion_config=diffusion_config)
    indices = list(range(plan.total)) if sample_indices is None else [int(i) for i in sample_indices]
    bad = [i for i in indices if not 0 <= i < plan.total]
    if bad:
        raise DitkitError(f"sample index {bad[0]} is outside the run's {plan.total} samples")
    return _batches(model, plan, indices, codec=codec, sampler=sampler, cfg_scale=cfg_scale,
                    guided_channels=guided_channels, seed=seed, batch_size=batch_size, progress=progress, eta=eta,
                    clip_denoised=clip_denoised, device=device, pad_batches=pad_batches)


def _batches(model, plan: SamplingPlan, indices: list[int], *, codec, sampler, cfg_scale, guided_channels, seed,
             batch_size, progress, eta, clip_denoised, device, pad_batches) -> Iterator[GeneratedSamples]:
    from ..diffusion.guidance import cfg_denoiser

    config, diffusion, all_labels = model.config, plan.diffusion, plan.labels
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    shape = (config.in_channels, config.input_size, config.input_size)
    was_training = model.training  # e.g. a model mid-training: put it back as it was
    model.eval()

    bar = tqdm(total=len(indices), desc=f"sampling ({sampler})", unit="img", disable=not progress)
    try:
        for start in range(0, len(indices), batch_size):
            batch_indices = indices[start:start + batch_size]
            batch_labels = None if all_labels is None else [all_labels[i] for i in batch_indices]
            generators = sample_generators(seed, batch_indices)
            # Pad a short final batch to the full size: the network then always sees the same shapes,
            # so a sample comes out bit-identical whichever batch (rank, resumed run) it falls in.
            padding = batch_size - len(batch_indices) if pad_batches else 0
            noise = _per_sample_randn(generators, shape, padding, device=device, dtype=dtype)

            def noise_sampler(x, generators=generators, padding=padding):
                return _per_sample_randn(generators, x.shape[1:], padding, device=x.device, dtype=x.dtype)

            y = None
            if batch_labels is not None:
                y = torch.tensor(batch_labels + batch_labels[:1] * padding, dtype=torch.long, device=device)
            denoiser = cfg_denoiser(model, y, cfg_scale, guided_channels=guided_channels)
            with torch.no_grad():
                options = {"clip_denoised": clip_denoised, **({"eta": eta} if sampler == "ddim" else {})}
                latents = run_sampler(sampler, denoiser, diffusion, noise, noise_sampler=noise_sampler, **options)
                latents = latents[:len(batch_indices)]
                images = None if codec is None else to_uint8_images(codec.decode(latents))
            bar.update(len(batch_indices))
            yield GeneratedSamples(images=images, latents=latents.detach().float().cpu(),
                                   labels=batch_labels, indices=batch_indices)
    finally:
        bar.close()
        model.train(was_training)


def generate(model, *, labels: Sequence[int] | None = None, num_samples: int | None = None, codec=None,
             sampler: str = "ddpm", steps: int | None = None, cfg_scale: float = 1.0,
             guided_channels: int | None = None, seed: int = 0, batch_size: int = 32,
             diffusion_config: dict | None = None, progress: bool = True,
             sample_indices: Sequence[int] | None = None, eta: float = 0.0, clip_denoised: bool = False,
             device=None, pad_batches: bool = True) -> GeneratedSamples:
    """Sample images from a DiT.

    ``labels``: class labels, one sample each (with ``num_samples`` too: cycled); ``num_samples`` alone
    spreads samples evenly over the classes (sample i gets class i mod K). ``codec`` decodes latents to
    images (None: latents only). ``sampler`` "ddpm" | "ddim" | "dpm++"; ``steps`` (default 250 / 50 / 20).
    ``cfg_scale`` (1 = no guidance); ``guided_channels`` (None = all ε channels, the standard form; 3 = the
    reference code's form). ``diffusion_config``: the checkpoint's diffusion settings. ``sample_indices``:
    which of the run's global sample indices to draw (default all). ``eta``: DDIM's noise.
    ``pad_batches``: run a short last batch at full size (default True).

    Sample i depends only on ``seed`` and i. With the same ``batch_size`` it is bit-identical whichever
    batch, rank or resumed run draws it; a different ``batch_size`` can change it by float rounding
    (the network's kernels depend on the batch shape), i.e. at most a level in rare pixels.
    """
    kwargs = dict(labels=labels, num_samples=num_samples, codec=codec, sampler=sampler, steps=steps,
                  cfg_scale=cfg_scale, guided_channels=guided_channels, seed=seed, batch_size=batch_size,
                  diffusion_config=diffusion_config, progress=progress, sample_indices=sample_indices, eta=eta,
                  clip_denoised=clip_denoised, device=device, pad_batches=pad_batches)
    parts = list(generate_batches(model, **kwargs))
    if not parts:
        raise DitkitError("there are no samples to draw")
    images = None if parts[0].images is None else np.concatenate([p.images for p in parts])
    labels = None if parts[0].labels is None else [y for p in parts for y in p.labels]
    return GeneratedSamples(images=images, latents=torch.cat([p.latents for p in parts]), labels=labels,
                            indices=[i for p in parts for i in p.indices])
