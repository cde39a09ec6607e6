"""Image sets to evaluate: a PNG/JPEG folder, an ADM-format ``.npz``, or a bundled dataset.

Everything becomes uint8 (N, H, W, C) pixels — the form samples are saved in — plus optional class
labels, so real and generated images go through exactly the same quantisation and feature path.

Labels of generated samples come from the ``labels`` array of an ``.npz`` or from file names that
carry a class (``000123_class3.png``, ``class_003_0001.png``, ``class_003/0001.png``).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DitkitError
from ..imaging import IMAGE_EXTENSIONS, to_8bit, to_uint8
_LABEL_PATTERN = re.compile(r"(?:^|[/_\-.])class[_\-]?(\d+)(?=$|[/_\-.])", re.IGNORECASE)


@dataclass
class ImageSet:
    images: np.ndarray  # uint8 (N, H, W, C), C = 1 or 3
    labels: np.ndarray | None  # int64 (N,) or None
    description: str  # what it is, for reports ("mnist:test (bundled)", "folder samples/ (500 images)")
    dataset: str | None = None  # bundled dataset name, when it is one
    split: str | None = None

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def parse_bundled(spec: str) -> tuple[str, str] | None:
    """``"mnist"`` → (mnist, train); ``"shapes:test"`` → (shapes, test); anything else → None."""
    from ..data import BUNDLED

    name, _, split = spec.partition(":")
    if name in BUNDLED and not os.path.exists(spec):
        return name, split or "train"
    return None


def dataset_images(name: str, split: str, image_size: int, limit: int | None = None) -> ImageSet:
    """A dataset's images (no flips) as uint8 pixels, in dataset order: ``mnist`` / ``shapes`` (with
    ``split``) or anything else ``ditkit.data.load_dataset`` opens (an image folder, center-cropped
    the way training sees it)."""
    from ..data import BUNDLED, load_dataset

    ds = load_dataset(name, image_size=image_size, split=split, flip=False)
    count = len(ds) if limit is None else min(limit, len(ds))
    if count == 0:
        raise DitkitError(f"{name} holds no images")
    images = np.empty((count, image_size, image_size, ds.channels), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        image, label = ds[i]
        # The dataset gives [-1, 1]; saved samples are uint8, so quantise the same way they are.
        images[i] = to_uint8(image)
        labels[i] = label
    if name in BUNDLED:
        return ImageSet(images, labels, f"{name}:{split} (bundled, {count} images at {image_size} px)", name, split)
    return ImageSet(images, labels if ds.num_classes else None, f"dataset {name} ({count} images at {image_size} px)")


def _label_from_name(relative_path: str) -> int | None:
    match = _LABEL_PATTERN.search(os.path.splitext(relative_path)[0])
    return int(match.group(1)) if match else None


def folder_images(folder: str) -> ImageSet:
    files = sorted(
        os.path.relpath(os.path.join(root, f), folder)
        for root, _, names in os.walk(folder) for f in names if f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise DitkitError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {folder}")
    pixels = []
    for rel in files:
        try:
            with Image.open(os.path.join(folder, rel)) as im:
                pixels.append(np.asarray(to_8bit(im)))  # 16-bit grey scaled, not clipped
        except (OSError, UnidentifiedImageError, ValueError):
            raise DitkitError(f"cannot read image {os.path.join(folder, rel)} (corrupt or not an image)") from None
    shapes = {p.shape[:2] for p in pixels}
    if len(shapes) > 1:
        (h1, w1), (h2, w2) = sorted(shapes)[:2]
        raise DitkitError(f"images in {folder} have different sizes ({h1}x{w1} and {h2}x{w2}); resize them to one resolution")
    if any(p.ndim == 3 for p in pixels):  # mixed grayscale and colour: treat all as RGB
        pixels = [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p for p in pixels]
    images = np.stack(pixels)
    if images.ndim == 3:
        images = images[..., None]
    labels = [_label_from_name(rel) for rel in files]
    labels = np.asarray(labels, dtype=np.int64) if all(v is not None for v in labels) else None
    h, w = images.shape[1:3]
    return ImageSet(images, labels, f"folder {folder} ({len(files)} images at {h}x{w})")


def npz_images(path: str) -> ImageSet:
    """An ADM-format batch: ``arr_0`` uint8 (N, H, W, 3) (or (N, H, W) / (N, H, W, 1)), optional ``labels``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "arr_0" not in data.files:
                raise DitkitError(f"{path} has no 'arr_0' array (found: {', '.join(data.files) or 'nothing'}); "
                                  "expected an ADM-format sample batch")
            images = data["arr_0"]
            labels = data["labels"] if "labels" in data.files else None
    except DitkitError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise DitkitError(f"cannot read {path}: corrupt or not a .npz file ({str(exc).splitlines()[0]})") from None
    if images.dtype != np.uint8:
        raise DitkitError(f"'arr_0' in {path} must be uint8 pixels (0..255), got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DitkitError(f"'arr_0' in {path} must have shape (N, H, W, 3), got {tuple(images.shape)}")
    if len(images) == 0:
        raise DitkitError(f"{path} holds no images")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            raise DitkitError(f"'labels' in {path} must be {len(images)} integers, got {labels.dtype} of length {len(labels)}")
        labels = labels.astype(np.int64)
    h, w = images.shape[1:3]
    return ImageSet(images, labels, f"npz {path} ({len(images)} images at {h}x{w})")


def open_images(spec: str, image_size: int | None = None) -> ImageSet:
    """Load ``spec``: a bundled dataset name (``mnist``, ``shapes:test``), a folder (a ``ditkit sample``
    output folder means its ``samples/``), or a ``.npz``.

    ``image_size`` is the resolution a bundled dataset is rendered at (default 32); files keep theirs.
    """
    bundled = parse_bundled(spec)
    if bundled is not None:
        return dataset_images(*bundled, image_size=image_size or 32)
    if os.path.isdir(spec):
        # A `ditkit sample` output folder (run.json, grid.png, samples/): score its per-sample PNGs.
        if os.path.isfile(os.path.join(spec, "run.json")) and os.path.isdir(os.path.join(spec, "samples")):
            return folder_images(os.path.join(spec, "samples"))
        return folder_images(spec)
    if not os.path.exists(spec):
        raise DitkitError(f"not found: {spec} (expected a folder of images, an .npz file, or mnist / shapes)")
    if spec.endswith(".npz"):
        return npz_images(spec)
    raise DitkitError(f"cannot evaluate {spec}: expected a folder of images, an .npz file, or mnist / shapes")
