"""Writing and reading sample images: PNGs, grids, and the ADM evaluation ``.npz``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import DitkitError
from ..fileio import atomic_write
from ..imaging import to_8bit


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 (H, W, C) with C = 1 or 3 → a PIL image ("L" or "RGB")."""
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected an (H, W, 1|3) image, got shape {image.shape}")
    return Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)


def save_png(image: np.ndarray, path: Path) -> None:
    pil = to_pil(image)
    atomic_write(path, lambda f: pil.save(f, format="PNG"))


def read_png(path: Path) -> np.ndarray:
    """A PNG as uint8 (H, W, C), C = 1 for grayscale, 3 for colour."""
    try:
        with Image.open(path) as im:
            im.load()
            array = np.asarray(to_8bit(im))
    except OSError as exc:
        raise DitkitError(f"cannot read the sample image {path}: {exc}") from None
    return array[:, :, None] if array.ndim == 2 else array


def as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 1|3) → (N, H, W, 3); grayscale becomes three equal channels (what ADM's suite reads)."""
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images


def write_npz(path: Path, images: np.ndarray, labels: Sequence[int] | None) -> None:
    """The ADM evaluation format: ``arr_0`` uint8 (N, H, W, 3), plus ``labels`` for class-conditional runs."""
    arrays = {"arr_0": as_rgb(np.asarray(images, dtype=np.uint8))}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def grid_layout(labels: Sequence[int] | None, count: int, *, max_columns: int = 16) -> list[list[int]]:
    """Rows of positions into the sample list: one row per class (first-seen order) when some class
    repeats, otherwise a near-square grid in sample order."""
    if labels is not None and len(set(labels)) < len(labels):
        rows: dict[int, list[int]] = {}
        for position, label in enumerate(labels):
            row = rows.setdefault(label, [])
            if len(row) < max_columns:
                row.append(position)
        return list(rows.values())
    columns = max(1, min(max_columns, int(np.ceil(np.sqrt(count)))))
    return [list(range(start, min(start + columns, count))) for start in range(0, count, columns)]


def make_grid(images: np.ndarray, labels: Sequence[int] | None = None, *, padding: int = 2,
              max_columns: int = 16, max_rows: int = 32) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images into one uint8 (H', W', C) image (see :func:`grid_layout`)."""
    rows = grid_layout(labels, len(images), max_columns=max_columns)[:max_rows]
    n, h, w, c = images.shape
    columns = max(len(row) for row in rows)
    grid = np.zeros((padding + len(rows) * (h + padding), padding + columns * (w + padding), c), np.uint8)
    for r, row in enumerate(rows):
        for col, position in enumerate(row):
            top, left = padding + r * (h + padding), padding + col * (w + padding)
            grid[top:top + h, left:left + w] = images[position]
    return grid
