"""Evaluation: FID / sFID / Inception Score / precision-recall, the FID InceptionV3, bundled classifiers,
the training hook, and the text-to-image and UniDiffuser scorers.

    from ditkit.evaluation import evaluate, format_report
    result = evaluate("samples.npz", "mnist")          # offline: the bundled mnist classifier
    result = evaluate("samples/", "ref.npz", extractor="inception", inception_weights="pt_inception.pth")

Every result names its ``extractor``; numbers from different extractors are never comparable.
Above ``pipelines``: the scorers that sample (``text_to_image``, ``training_hook``) sample through it.

- ``evaluate``: ``evaluate`` (samples vs a reference → every metric), ``score_features``, ``format_report``
- ``metrics``: FID / sFID, Inception Score, precision and recall from features
- ``extractors``: the feature extractors behind every metric: the FID InceptionV3 or a bundled classifier
- ``inception``: the FID InceptionV3 in plain PyTorch (the standard ``pt_inception-2015-12-05`` weights)
- ``classifier``: the small offline classifiers bundled per dataset; ``train_classifier`` trains them
- ``reference``: reference statistics (mean/covariance, a subset for precision/recall), cached for bundled data
- ``sources``: image sets: a folder, an ADM ``.npz``, a bundled dataset
- ``training_hook``: ``make_training_eval_fn``: the training engine's FID hook
- ``attributes``: the bundled shapes attribute classifier (per-cell shape / colour / size heads), ``score_scenes``
  / ``score_images`` (per attribute, all-correct, seen vs held-out; ``relation_axis``); ``train_attributes``
  trains it
- ``text_to_image``: ``ditkit t2i-eval``: sample a text checkpoint on test and held-out captions, score;
  ``sample_and_score`` is shared with the training engine's periodic evaluation
- ``clip_score``: CLIP score with a hub or local CLIP
- ``unidiffuser_eval``: UniDiffuser scored on the data it was trained on (``SCORINGS``: data name →
  ``UniScoring``): t2i, i2t, joint; ``evaluate_unidiffuser``
- ``digit_scoring``: the MNIST digits' scoring (the bundled MNIST classifier + ``parse_digit_caption``)
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
