"""Image folders: class subfolders → class-conditional, a flat folder → unconditional."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DitkitError
from ..imaging import IMAGE_EXTENSIONS, from_uint8
from .transforms import FlipMixin, center_crop_arr

_READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError, SyntaxError)


def _list_images(folder: str) -> list[str]:
    return sorted(
        os.path.join(folder, f) for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".") and os.path.isfile(os.path.join(folder, f))
    )


def _readable(path: str) -> bool:
    """A cheap header check (and PNG CRCs) when the folder is indexed; full decoding waits for use."""
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except _READ_ERRORS:
        return False


def load_image(path: str, image_size: int) -> np.ndarray:
    """Decode, convert to RGB and ADM-center-crop one file; uint8 (H, W, 3)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    return np.asarray(center_crop_arr(im, image_size))


class ImageFolderDataset(FlipMixin, torch.utils.data.Dataset):
    """Images under ``root``: sorted class-subfolder names give labels 0..K-1; a flat folder has K = 0
    and every label is 0.

    Unreadable or corrupt files are skipped and counted (``num_skipped``, with one warning) or, with
    ``strict=True``, raise ``DitkitError``.
    """

    def __init__(self, root: str, image_size: int = 256, flip: bool = True, strict: bool = False, flip_seed: int = 0):
        if not os.path.exists(root):
            raise DitkitError(f"data folder not found: {root}")
        if not os.path.isdir(root):
            raise DitkitError(f"--data must be a folder of images, 'mnist' or 'shapes', got the file {root}")
        subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
        flat_files = _list_images(root)
        if subdirs and not flat_files:
            self.class_names = subdirs
            candidates = [(p, label) for label, d in enumerate(subdirs) for p in _list_images(os.path.join(root, d))]
        else:
            # Images directly in the folder: unconditional (subfolders beside them are ignored).
            self.class_names = []
            candidates = [(p, 0) for p in flat_files]
        if not candidates:
            raise DitkitError(f"no images found in {root} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        bad = [p for p, _ in candidates if not _readable(p)]
        if bad and strict:
            raise DitkitError(f"{len(bad)} unreadable image(s) in {root}, e.g. {bad[0]} (drop --strict to skip them)")
        if bad:
            warnings.warn(f"skipped {len(bad)} unreadable image(s) in {root}, e.g. {bad[0]}", stacklevel=2)
        bad_set = set(bad)
        self.samples = [(p, label) for p, label in candidates if p not in bad_set]
        if not self.samples:
            raise DitkitError(f"every image in {root} is unreadable ({len(bad)} files)")
        self.num_skipped = len(bad)
        self.root = root
        self.strict = strict
        self.image_size = image_size
        self.channels = 3
        self.num_classes = len(self.class_names)
        self.flip = flip
        self.flip_seed = flip_seed
        self.name = os.path.basename(os.path.normpath(root))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        # A header can look fine while the data is broken (e.g. a truncated JPEG). Under strict that
        # is an error; otherwise use the next decodable image so batches keep their size.
        for offset in range(len(self.samples)):
            path, label = self.samples[(i + offset) % len(self.samples)]
            try:
                arr = load_image(path, self.image_size)
            except _READ_ERRORS as exc:
                if self.strict:
                    raise DitkitError(f"cannot decode image {path}: {exc}") from exc
                warnings.warn(f"cannot decode image {path} ({exc}); using the next image instead", stacklevel=2)
                continue
            return self._maybe_flip(from_uint8(arr), i), label
        raise DitkitError(f"no image in {self.root} can be decoded")
