"""``evaluate``: samples vs a reference → FID, sFID, IS, precision/recall, class accuracy.

The result names the extractor that made every number; numbers from different extractors are not
comparable (an offline classifier FID is not an Inception FID).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DitkitError
from ..version import __version__
from .extractors import FeatureExtractor, classifier_extractor, make_extractor
from .classifier import bundled_classifier_names
from .metrics import feature_statistics, frechet_distance, inception_score, precision_recall, resolve_method
from .reference import MIN_IMAGES, ReferenceStats, reference_statistics
from .sources import ImageSet, open_images, parse_bundled


def class_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples the classifier assigns to the class they were generated for."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def score_features(features: dict[str, np.ndarray], reference: ReferenceStats, *, labels: np.ndarray | None = None,
                   num_classes: int | None = None, max_pr_samples: int = 10_000, is_splits: int = 10,
                   fd_method: str = "auto") -> dict[str, float]:
    """All metrics for one set of sample features against reference statistics of the same extractor."""
    mu, sigma = feature_statistics(features["pool"])
    metrics = {"fid": frechet_distance(mu, sigma, reference.mu, reference.sigma, method=fd_method)}
    if "spatial" in features and reference.mu_spatial is not None:
        mu_s, sigma_s = feature_statistics(features["spatial"])
        metrics["sfid"] = frechet_distance(mu_s, sigma_s, reference.mu_spatial, reference.sigma_spatial, method=fd_method)
    metrics["inception_score"], metrics["inception_score_std"] = inception_score(features["logits"], is_splits)
    metrics["precision"], metrics["recall"] = precision_recall(reference.pr_features, features["pool"][:max_pr_samples],
                                                          real_radii=reference.pr_radii)
    if labels is not None and num_classes is not None:
        metrics["class_accuracy"] = class_accuracy(features["logits"], labels)
    return metrics


def _check_labels(labels: np.ndarray | None, num_classes: int | None, where: str) -> None:
    if labels is not None and num_classes is not None and len(labels) and not (0 <= labels.min() and labels.max() < num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise DitkitError(f"{where} has class label {bad}, but the classifier knows {num_classes} classes (0..{num_classes - 1})")


def evaluate(samples: str | ImageSet, reference: str, *, extractor: str | FeatureExtractor = "auto",
             inception_weights: str | None = None, batch_size: int = 64, max_pr_samples: int = 10_000,
             is_splits: int = 10, fd_method: str = "auto", use_cache: bool = True, progress: bool = True) -> dict:
    """Evaluate ``samples`` (a folder, an ADM ``.npz``, a bundled dataset name such as ``mnist:test``, or
    an ``ImageSet``) against ``reference`` (a folder, ``.npz``, or ``mnist`` / ``shapes[:split]``).

    Returns a JSON-ready dict: ``metrics`` (fid, sfid for Inception, inception_score(+_std), precision,
    recall, class_accuracy when the samples carry labels and a classifier is available), the
    ``extractor`` that made them, counts, resolutions, settings, warnings and the ditkit version.
    """
    sample_set, bundled_ref = _open_samples(samples, reference, batch_size)
    fx = extractor if isinstance(extractor, FeatureExtractor) else make_extractor(extractor, reference, inception_weights)
    _check_labels(sample_set.labels, fx.num_classes, "the samples")
    ref, metrics, notes = _score_against_reference(sample_set, reference, fx, batch_size=batch_size,
                                                   max_pr_samples=max_pr_samples, is_splits=is_splits,
                                                   fd_method=fd_method, use_cache=use_cache, progress=progress)
    class_accuracy_by = fx.name if "class_accuracy" in metrics else None
    if sample_set.labels is not None and "class_accuracy" not in metrics and bundled_ref \
            and bundled_ref[0] in bundled_classifier_names():
        # Inception knows ImageNet classes, not ours: judge the labels with the dataset's classifier.
        metrics["class_accuracy"], class_accuracy_by = _bundled_class_accuracy(bundled_ref[0], sample_set,
                                                                               batch_size, progress)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return {
        "ditkit_version": __version__,
        "extractor": fx.name,
        "extractor_fingerprint": fx.fingerprint,
        "metrics": metrics,
        "class_accuracy_extractor": class_accuracy_by,
        "samples": _samples_record(samples, sample_set),
        "reference": {"source": reference, "description": ref.description, "count": ref.count,
                      "resolution": list(ref.resolution), "statistics": "cached" if ref.cached else "computed"},
        "settings": {"fd_method": resolve_method(fd_method, ref.mu.shape[0]), "precision_recall_k": 3,
                     "max_pr_samples": max_pr_samples, "is_splits": is_splits, "batch_size": batch_size},
        "warnings": notes,
    }


def _open_samples(samples: str | ImageSet, reference: str, batch_size: int) -> tuple[ImageSet, tuple | None]:
    """(the samples as an ImageSet, the bundled reference parsed or None), after the checks that need no features."""
    if batch_size < 1:
        raise DitkitError(f"the batch size must be at least 1, got {batch_size}")
    sample_set = samples if isinstance(samples, ImageSet) else open_images(samples)
    if len(sample_set) < MIN_IMAGES:
        raise DitkitError(f"need at least {MIN_IMAGES} samples (precision/recall uses 3 nearest neighbours), "
                          f"got {len(sample_set)}")
    height, width = sample_set.resolution
    bundled_ref = parse_bundled(reference)
    if bundled_ref and height != width:
        raise DitkitError(f"samples are {height}x{width}; bundled datasets are square, so resolutions cannot match")
    return sample_set, bundled_ref


def _score_against_reference(sample_set: ImageSet, reference: str, fx: FeatureExtractor, *, batch_size: int,
                             max_pr_samples: int, is_splits: int, fd_method: str, use_cache: bool,
                             progress: bool) -> tuple[ReferenceStats, dict[str, float], list[str]]:
    """(reference statistics, metrics, warnings: the reference's, then the samples', unique, in order)."""
    height, width = sample_set.resolution
    collected: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = reference_statistics(reference, fx, height, batch_size=batch_size, max_pr_samples=max_pr_samples,
                                   use_cache=use_cache, progress=progress)
        if ref.resolution != (height, width):
            raise DitkitError(f"resolutions differ: samples are {height}x{width}, the reference is "
                              f"{ref.resolution[0]}x{ref.resolution[1]}; FID needs both at one resolution")
        features = fx(sample_set, batch_size, progress)
        metrics = score_features(features, ref, labels=sample_set.labels, num_classes=fx.num_classes,
                                 max_pr_samples=max_pr_samples, is_splits=is_splits, fd_method=fd_method)
    for w in caught:
        collected.append(f"samples: {w.message}")
    return ref, metrics, list(dict.fromkeys(ref.warnings + collected))


def _bundled_class_accuracy(name: str, sample_set: ImageSet, batch_size: int, progress: bool) -> tuple[float, str]:
    """(class accuracy of labelled samples by bundled dataset ``name``'s classifier, that classifier's name)."""
    clf = classifier_extractor(name)
    _check_labels(sample_set.labels, clf.num_classes, "the samples")
    return class_accuracy(clf(sample_set, batch_size, progress)["logits"], sample_set.labels), clf.name


def _samples_record(samples: str | ImageSet, sample_set: ImageSet) -> dict:
    height, width = sample_set.resolution
    return {"source": samples if isinstance(samples, str) else sample_set.description,
            "description": sample_set.description, "count": len(sample_set),
            "resolution": [height, width], "labelled": sample_set.labels is not None}


_LABELS = {"fid": "FID", "sfid": "sFID", "inception_score": "IS", "precision": "precision", "recall": "recall",
           "class_accuracy": "class accuracy"}


def format_report(result: dict) -> str:
    """Human-readable lines for a result of :func:`evaluate`."""
    m = result["metrics"]
    lines = [f"extractor: {result['extractor']}",
             f"samples:   {result['samples']['description']}",
             f"reference: {result['reference']['description']} (statistics {result['reference']['statistics']})"]
    for key, label in _LABELS.items():
        if key not in m:
            continue
        value = f"{m[key]:.4f}"
        if key == "inception_score":
            value += f" ± {m['inception_score_std']:.4f}"
        if key == "class_accuracy" and result.get("class_accuracy_extractor") != result["extractor"]:
            value += f" (by {result['class_accuracy_extractor']})"
        lines.append(f"{label + ':':<16}{value}")
    return "\n".join(lines)
