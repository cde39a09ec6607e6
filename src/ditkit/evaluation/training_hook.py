"""The training engine's FID hook: sample with the EMA model every N steps and score the samples.

    eval_fn = make_training_eval_fn("mnist", 1000, image_size=32, seed=0)
    train(config, eval_fn=eval_fn, eval_every=5000)    # logs {"fid": ..., "class_accuracy": ...}

Reference statistics are computed once (and cached on disk for the bundled datasets); each call then
costs the sampling plus one feature pass over ``num_samples`` images.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DitkitError
from .evaluate import class_accuracy
from .extractors import make_extractor
from .metrics import FewSamplesWarning, feature_statistics, frechet_distance
from .reference import ReferenceStats, reference_statistics, statistics_from_features
from .sources import ImageSet, dataset_images, parse_bundled

DEFAULT_REFERENCE_LIMIT = 10_000  # images of a folder dataset used for its reference statistics


def make_training_eval_fn(data: str, num_samples: int, *, image_size: int | None = None, codec="none",
                          sampler: str = "ddim", steps: int | None = 50, cfg_scale: float = 1.0, seed: int = 0,
                          extractor: str = "auto", inception_weights: str | None = None,
                          diffusion_config: dict | None = None, batch_size: int = 64,
                          reference_limit: int = DEFAULT_REFERENCE_LIMIT, progress: bool = False,
                          prompts: list[str] | None = None, text_codec=None, prompt_labels: list[int] | None = None):
    """Build ``fn(ema_model, step) -> {"fid": ..., "class_accuracy": ...}`` for the training loop.

    ``data``: the training data (``mnist``, ``shapes``, or an image folder) — its train split is the
    reference. ``codec``: the codec spec the model was trained with (``"none"`` = pixels, or a VAE).
    Samples: ``num_samples`` spread evenly over the classes, ``sampler``/``steps``/``cfg_scale``, the
    same ``seed`` at every call (so successive FIDs differ only by the model). ``extractor`` as in
    ``ditkit eval`` (auto = the bundled classifier for mnist/shapes, else Inception).
    ``fn.extractor`` names the extractor behind the numbers. A text model samples ``prompts`` (cycled)
    with ``text_codec``; ``prompt_labels`` (the class each prompt names) give it a class accuracy too.
    Problems (no Inception weights, bad settings) raise DitkitError here, before training starts.
    """
    from ..codecs import make_codec

    if int(num_samples) < 2:
        raise DitkitError(f"FID during training needs at least 2 samples, got {num_samples}")
    bundled = parse_bundled(data)
    resolution = int(image_size or (32 if bundled else 256))
    fx = make_extractor(extractor, data if bundled else None, inception_weights)
    reference = _cached_reference(data, bundled, fx, resolution, batch_size=batch_size,
                                  reference_limit=reference_limit, progress=progress)
    codec_spec = codec
    state: dict[str, object] = {}

    def eval_fn(ema_model, step: int) -> dict[str, float]:
        from ..pipelines import generate

        config = ema_model.config
        channels = 1 if config.in_channels == 1 else 3
        codec_obj = state.get("codec") or make_codec(codec_spec, image_channels=channels)
        state["codec"] = codec_obj
        samples = generate(ema_model, num_samples=int(num_samples), codec=codec_obj, sampler=sampler, steps=steps,
                           cfg_scale=cfg_scale, seed=seed, batch_size=batch_size, diffusion_config=diffusion_config,
                           progress=progress, prompts=prompts, text_codec=text_codec)
        images = ImageSet(samples.images, None, f"{len(samples)} EMA samples at step {step}")
        return _score_samples(images, reference(), fx, batch_size=batch_size, labels=samples.labels,
                              num_classes=config.num_classes, prompt_labels=prompt_labels)

    eval_fn.extractor = fx.name
    return eval_fn


def _cached_reference(data: str, bundled, fx, resolution: int, *, batch_size: int, reference_limit: int,
                      progress: bool):
    """``reference() -> ReferenceStats`` of the training data, computed on its first call and kept."""
    state: dict[str, ReferenceStats] = {}

    def reference() -> ReferenceStats:
        if "reference" not in state:
            if bundled:
                state["reference"] = reference_statistics(data, fx, resolution, batch_size=batch_size,
                                                          progress=progress)
            else:
                images = dataset_images(data, "train", resolution, limit=reference_limit)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FewSamplesWarning)
                    # The hook reports FID and class accuracy only: no precision/recall subset needed.
                    state["reference"] = statistics_from_features(fx(images, batch_size, progress), images, fx, 0)
        return state["reference"]

    return reference


def _score_samples(images: ImageSet, ref: ReferenceStats, fx, *, batch_size: int, labels, num_classes: int,
                   prompt_labels: list[int] | None) -> dict[str, float]:
    """FID of ``images`` against ``ref``; class accuracy where the extractor is a classifier of the model's classes
    (``labels``: the class each sample was drawn for) or the prompts name classes (``prompt_labels``, cycled)."""
    if images.resolution != ref.resolution:
        raise DitkitError(f"samples are {images.resolution[0]} px but the reference is {ref.resolution[0]} px; "
                          "set image_size to the training resolution")
    features = fx(images, batch_size, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewSamplesWarning)  # small periodic FIDs are expected to be rough
        mu, sigma = feature_statistics(features["pool"])
    result = {"fid": frechet_distance(mu, sigma, ref.mu, ref.sigma)}
    if fx.is_classifier and labels is not None and num_classes == fx.num_classes:
        result["class_accuracy"] = class_accuracy(features["logits"], np.asarray(labels))
    elif fx.is_classifier and prompt_labels:
        named = [prompt_labels[i % len(prompt_labels)] for i in range(len(images))]
        result["class_accuracy"] = class_accuracy(features["logits"], np.asarray(named))
    return result
