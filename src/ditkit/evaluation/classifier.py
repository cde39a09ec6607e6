"""Small classifiers trained by ditkit on its bundled datasets: an offline feature extractor.

The FID Inception weights cannot always be downloaded, and Inception features say little about
32×32 digits anyway. For the bundled datasets ditkit ships a few-conv CNN per dataset
(``assets/classifiers/<name>.safetensors`` + ``<name>.json``, trained by
``python -m ditkit.evaluation.train_classifier``). Its penultimate features give an *offline FID*
(numbers comparable only with other numbers from the same classifier) and its predictions give the
*class accuracy* of class-conditional samples.
"""

from __future__ import annotations

import json
import os
from importlib import resources

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..errors import DitkitError


class SmallClassifier(nn.Module):
    """Three conv stages (32 → 16 → 8 → 4 px) and a ``feature_dim`` penultimate layer.

    Input: (N, channels, image_size, image_size) in [0, 1]; other sizes are resized first.
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 32, feature_dim: int = 128,
                 image_size: int = 32):
        super().__init__()
        self.config = dict(channels=channels, num_classes=num_classes, width=width, feature_dim=feature_dim,
                           image_size=image_size)
        self.channels, self.image_size = channels, image_size

        def stage(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.stages = nn.Sequential(stage(channels, width), stage(width, 2 * width), stage(2 * width, 4 * width))
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * (image_size // 8) ** 2, feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Match the classifier's channels and size; map [0, 1] to [-1, 1] as in training."""
        if images.shape[1] != self.channels:
            if self.channels == 1:  # grayscale stored as three equal channels (ADM .npz)
                images = images.mean(dim=1, keepdim=True)
            elif images.shape[1] == 1:
                images = images.expand(-1, self.channels, -1, -1)
            else:
                raise DitkitError(f"the classifier expects {self.channels}-channel images, got {images.shape[1]}")
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return images * 2.0 - 1.0

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(self.stages(self.prepare(images)))
        return {"pool": feats, "logits": self.head(self.dropout(feats))}


def _asset_dir():
    return resources.files("ditkit") / "assets" / "classifiers"


def bundled_classifier_names() -> list[str]:
    return sorted(p.name[:-5] for p in _asset_dir().iterdir() if p.name.endswith(".json"))


def load_classifier(path_or_name: str) -> tuple[SmallClassifier, dict]:
    """Load a classifier by bundled name (``"mnist"``) or from ``PATH.safetensors`` + ``PATH.json``.

    Returns the eval-mode model and its metadata (dataset, resolution, test accuracy, command).
    """
    if os.sep in path_or_name or path_or_name.endswith(".safetensors"):
        base = path_or_name[: -len(".safetensors")] if path_or_name.endswith(".safetensors") else path_or_name
        weights, meta_path = base + ".safetensors", base + ".json"
    else:
        if path_or_name not in bundled_classifier_names():
            raise DitkitError(f"no bundled classifier '{path_or_name}' (available: {', '.join(bundled_classifier_names()) or 'none'})")
        weights = str(_asset_dir() / f"{path_or_name}.safetensors")
        meta_path = str(_asset_dir() / f"{path_or_name}.json")
    if not (os.path.isfile(weights) and os.path.isfile(meta_path)):
        raise DitkitError(f"classifier files not found: {weights} and {meta_path}")
    with open(meta_path) as f:
        meta = json.load(f)
    model = SmallClassifier(**meta["model"])
    try:
        model.load_state_dict(load_file(weights))
    except Exception as exc:
        raise DitkitError(f"cannot load classifier weights {weights}: {str(exc).splitlines()[0]}") from None
    return model.eval().requires_grad_(False), meta
