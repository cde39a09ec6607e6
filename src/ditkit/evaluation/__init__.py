"""Evaluation: FID / sFID / Inception Score / precision-recall, the FID InceptionV3, bundled classifiers.

    from ditkit.evaluation import evaluate, format_report
    result = evaluate("samples.npz", "mnist")          # offline: the bundled mnist classifier
    result = evaluate("samples/", "ref.npz", extractor="inception", inception_weights="pt_inception.pth")

Every result names its ``extractor``; numbers from different extractors are never comparable.
``make_training_eval_fn`` is the training engine's FID hook.
"""

from .classifier import SmallClassifier, bundled_classifier_names, load_classifier
from .evaluate import class_accuracy, evaluate, format_report, score_features
from .extractors import FeatureExtractor, classifier_extractor, inception_extractor, make_extractor
from .inception import FID_WEIGHTS_URL, FIDInceptionV3, load_fid_inception, resolve_inception_weights
from .metrics import (FewSamplesWarning, feature_statistics, fid_from_features, frechet_distance, inception_score,
                      precision_recall)
from .reference import ReferenceStats, reference_statistics
from .sources import ImageSet, open_images
from .training_hook import make_training_eval_fn

__all__ = [
    "FID_WEIGHTS_URL", "FIDInceptionV3", "FeatureExtractor", "FewSamplesWarning", "ImageSet", "ReferenceStats",
    "SmallClassifier", "bundled_classifier_names", "class_accuracy", "classifier_extractor", "evaluate",
    "feature_statistics", "fid_from_features", "format_report", "frechet_distance", "inception_extractor",
    "inception_score", "load_classifier", "load_fid_inception", "make_extractor", "make_training_eval_fn",
    "open_images", "precision_recall", "reference_statistics", "resolve_inception_weights", "score_features",
]
