"""Every UniDiffuser mode in one figure: one row per mode, its input first (a caption, an image, or none), then
its outputs (images, captions, or both). ``examples/uni_modes_figure.py`` fills the rows from a model,
``./run demo`` from the folders its ``ditkit uni`` commands wrote (``rows_from_folders``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["ModeRow", "DESCRIPTIONS", "draw_modes", "rows_from_folders"]

DESCRIPTIONS = {"t2i": "text → image", "i2t": "image → text", "joint": "image and text together",
                "i": "image alone", "t": "text alone", "i2t2i": "image variation (image → text → image)",
                "t2i2t": "text variation (text → image → text)"}


@dataclass
class ModeRow:
    """One mode's row: its input (a prompt, an (H, W[, C]) uint8 image, or None) and outputs (uint8 images
    (N, H, W[, C]) and/or captions)."""

    mode: str
    given: str | np.ndarray | None
    images: np.ndarray | None = None
    captions: list[str] | None = None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _show_image(ax, image: np.ndarray) -> None:
    grey = image.ndim == 2 or image.shape[-1] == 1
    ax.imshow(image.squeeze(-1) if image.ndim == 3 and grey else image, cmap="gray" if grey else None,
              vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _show_text(ax, text: str) -> None:
    ax.text(0.5, 0.5, textwrap.fill(_short(text), 18), ha="center", va="center", fontsize=8, wrap=True)
    ax.axis("off")


def _draw_row(axes, row: ModeRow, n: int) -> None:
    first = axes[0]
    if isinstance(row.given, str):
        _show_text(first, f"“{row.given}”")
    elif row.given is not None:
        _show_image(first, row.given)
    else:
        _show_text(first, "(no input)")
    first.set_title(f"{row.mode}: {DESCRIPTIONS.get(row.mode, '')}", fontsize=8, loc="left")
    for col in range(n):
        ax = axes[col + 1]
        caption = row.captions[col] if row.captions and col < len(row.captions) else None
        if row.images is not None and col < len(row.images):
            _show_image(ax, row.images[col])
            if caption is not None:
                ax.set_xlabel(textwrap.fill(_short(caption), 20), fontsize=7)
        elif caption is not None:
            _show_text(ax, caption)
        else:
            ax.axis("off")


def draw_modes(rows: list[ModeRow], n: int):
    """The matplotlib figure: one row per ``ModeRow``, the input then ``n`` outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), n + 1, figsize=(1.6 * (n + 1), 1.9 * len(rows)), squeeze=False)
    for row, row_axes in zip(rows, axes):
        _draw_row(row_axes, row, n)
    fig.tight_layout()
    return fig


def _read_folder(folder: Path) -> tuple[np.ndarray | None, list[str] | None]:
    pngs = sorted(p for p in folder.glob("[0-9]*.png"))
    images = np.stack([np.asarray(Image.open(p)) for p in pngs]) if pngs else None
    text = folder / "captions.txt"
    captions = text.read_text(encoding="utf-8").splitlines() if text.is_file() else None
    return images, captions


def rows_from_folders(folders: dict[str, Path], prompt: str, image: np.ndarray) -> list[ModeRow]:
    """Rows from ``ditkit uni`` output folders (mode → folder) run on ``prompt`` / ``image`` as their input."""
    from .unidiffuser import MODE_INPUTS

    rows = []
    for mode, folder in folders.items():
        needs = MODE_INPUTS[mode]
        given = prompt if needs == "prompts" else image if needs == "images" else None
        rows.append(ModeRow(mode, given, *_read_folder(Path(folder))))
    return rows
