"""Feature extractors behind every metric: the FID InceptionV3 or a bundled classifier.

An extractor has a ``name`` (printed in every report) and a ``fingerprint`` (name + a hash of its
weights) that keys cached reference statistics, so numbers from different extractors, or from
different weights under one name, are never mixed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..errors import DitkitError
from .classifier import bundled_classifier_names, load_classifier
from .inception import FID_WEIGHTS_FILE, load_fid_inception, resolve_inception_weights
from .sources import ImageSet, parse_bundled

STANDARD_INCEPTION_SHA256_PREFIX = FID_WEIGHTS_FILE.rsplit("-", 1)[-1].split(".")[0]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class FeatureExtractor:
    name: str  # "inception-v3-fid", "classifier:mnist", ...
    fingerprint: str  # name + weights hash: the cache key part
    model: nn.Module
    num_classes: int | None = None  # classifiers: predictions are dataset classes (class accuracy)

    @property
    def is_classifier(self) -> bool:
        return self.num_classes is not None

    @torch.no_grad()
    def __call__(self, images: ImageSet | np.ndarray, batch_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
        """Features of uint8 (N, H, W, C) pixels: ``pool``, ``logits`` and, for Inception, ``spatial``."""
        pixels = images.images if isinstance(images, ImageSet) else images
        outputs: dict[str, list[np.ndarray]] = {}
        starts = range(0, len(pixels), batch_size)
        for start in tqdm(starts, desc=f"features ({self.name})", disable=not progress or len(starts) < 2, leave=False):
            batch = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch_size]))
            batch = batch.permute(0, 3, 1, 2).float() / 255.0
            if batch.shape[1] == 1 and not self.is_classifier:
                batch = batch.expand(-1, 3, -1, -1)  # grayscale → RGB for Inception
            for key, value in self.model(batch).items():
                outputs.setdefault(key, []).append(value.double().numpy())
        return {key: np.concatenate(parts) for key, parts in outputs.items()}


def inception_extractor(weights: str | None = None, download: bool = True) -> FeatureExtractor:
    path = resolve_inception_weights(weights, download)
    digest = _sha256(path)
    # The standard pytorch-fid file gets the standard name; anything else is named by its hash,
    # so its statistics can never be taken for (or compared with) real FID numbers.
    name = "inception-v3-fid" if digest.startswith(STANDARD_INCEPTION_SHA256_PREFIX) else f"inception-v3[{digest[:12]}]"
    return FeatureExtractor(name, f"{name}-{digest[:12]}", load_fid_inception(path))


def classifier_extractor(name_or_path: str) -> FeatureExtractor:
    """A bundled classifier by dataset name (``mnist``) or a trained one by path (``out/mnist.safetensors``)."""
    model, _ = load_classifier(name_or_path)
    name = f"classifier:{name_or_path}"  # a bundled name, or the path as given: never passes for the other
    weights_hash = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.state_dict().values())).hexdigest()
    return FeatureExtractor(name, f"{name}-{weights_hash[:12]}", model, num_classes=model.config["num_classes"])


def make_extractor(spec: str = "auto", reference: str | None = None, inception_weights: str | None = None) -> FeatureExtractor:
    """``auto``: the bundled classifier when the reference is a bundled dataset, else Inception.
    ``inception``: the FID InceptionV3 (``inception_weights`` path, the cache, or a download).
    ``classifier:NAME`` / ``classifier:PATH``: a bundled or saved classifier."""
    if spec == "auto":
        bundled = parse_bundled(reference) if reference else None
        if bundled is not None and bundled[0] in bundled_classifier_names():
            return classifier_extractor(bundled[0])
        return inception_extractor(inception_weights)
    if spec == "inception":
        return inception_extractor(inception_weights)
    if spec.startswith("classifier:"):
        return classifier_extractor(spec.split(":", 1)[1])
    raise DitkitError(f"unknown extractor '{spec}' (choose auto, inception, or classifier:NAME with NAME in "
                      f"{', '.join(bundled_classifier_names())})")
