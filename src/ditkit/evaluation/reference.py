"""Reference statistics: feature mean/covariance (and a feature subset for precision/recall).

Statistics of a bundled dataset are cached under ``$DITKIT_CACHE/ref_stats`` (default
``~/.cache/ditkit``), keyed by dataset, split, resolution and extractor fingerprint (extractor name
+ weights hash) — statistics of different extractors or weights can never be mixed. Folders and
``.npz`` references are recomputed each time (their contents can change under the same path).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DitkitError
from ..fileio import atomic_path
from ..version import __version__
from .extractors import FeatureExtractor
from .inception import cache_dir
from .metrics import feature_statistics, knn_radii
from .sources import ImageSet, dataset_images, open_images, parse_bundled

MIN_IMAGES = 4  # precision / recall look at 3 nearest neighbours, so a set needs 4 points


@dataclass
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    pr_features: np.ndarray  # up to max_pr_samples pool features, for precision / recall
    pr_radii: np.ndarray  # their k-NN radii (k = 3), so precision / recall need not recompute them
    count: int
    resolution: tuple[int, int]
    description: str
    extractor: str
    mu_spatial: np.ndarray | None = None
    sigma_spatial: np.ndarray | None = None
    cached: bool = False
    warnings: list[str] = field(default_factory=list)


def statistics_from_features(features: dict[str, np.ndarray], images: ImageSet, extractor: FeatureExtractor,
                             max_pr_samples: int) -> ReferenceStats:
    if len(images) < MIN_IMAGES:
        raise DitkitError(f"the reference ({images.description}) needs at least {MIN_IMAGES} images")
    mu, sigma = feature_statistics(features["pool"])
    pr_features = features["pool"][:max_pr_samples]
    radii = knn_radii(pr_features) if len(pr_features) else np.zeros(0)  # max_pr_samples 0: no precision/recall
    stats = ReferenceStats(mu, sigma, pr_features, radii, len(images), images.resolution,
                           images.description, extractor.name)
    if "spatial" in features:
        stats.mu_spatial, stats.sigma_spatial = feature_statistics(features["spatial"])
    return stats


def cache_path(dataset: str, split: str, resolution: int, extractor: FeatureExtractor) -> str:
    key = f"{dataset}-{split}-{resolution}px-{extractor.fingerprint}"
    return os.path.join(cache_dir(), "ref_stats", re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".npz")


def _load_cached(path: str, max_pr_samples: int) -> ReferenceStats | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if len(data["pr_features"]) != min(max_pr_samples, meta["count"]):
                return None  # cached with another precision/recall subset size than asked for now
            stats = ReferenceStats(data["mu"], data["sigma"], data["pr_features"], data["pr_radii"], meta["count"],
                                   tuple(meta["resolution"]), meta["description"], meta["extractor"], cached=True)
            if "mu_spatial" in data.files:
                stats.mu_spatial, stats.sigma_spatial = data["mu_spatial"], data["sigma_spatial"]
            return stats
    except (OSError, ValueError, KeyError):
        return None  # missing or unreadable cache entry: recompute


def _save_cached(path: str, stats: ReferenceStats) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    meta = dict(count=stats.count, resolution=list(stats.resolution), description=stats.description,
                extractor=stats.extractor, ditkit_version=__version__)
    arrays = dict(mu=stats.mu, sigma=stats.sigma, pr_features=stats.pr_features, pr_radii=stats.pr_radii, meta=np.array(json.dumps(meta)))
    if stats.mu_spatial is not None:
        arrays.update(mu_spatial=stats.mu_spatial, sigma_spatial=stats.sigma_spatial)
    with atomic_path(path, suffix=".npz") as tmp:  # np.savez adds .npz to names without it
        np.savez(tmp, **arrays)


def reference_statistics(reference: str, extractor: FeatureExtractor, resolution: int, *, batch_size: int = 64,
                         max_pr_samples: int = 10_000, use_cache: bool = True, progress: bool = True) -> ReferenceStats:
    """Statistics of ``reference`` (bundled name, folder or .npz) under ``extractor``.

    ``resolution`` is the size a bundled dataset is rendered at (the samples' size).
    """
    bundled = parse_bundled(reference)
    path = cache_path(*bundled, resolution, extractor) if bundled else None
    if path and use_cache and (cached := _load_cached(path, max_pr_samples)) is not None:
        return cached
    images = dataset_images(*bundled, image_size=resolution) if bundled else open_images(reference)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = statistics_from_features(extractor(images, batch_size, progress), images, extractor, max_pr_samples)
    stats.warnings = [f"reference: {w.message}" for w in caught]
    if path and use_cache:
        _save_cached(path, stats)
    return stats
