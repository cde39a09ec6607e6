"""What a Generate request gives back, for DiT and UniDiffuser models alike: ``GenerateResult`` and the files
``ditkit sample --npz`` writes (``write_downloads``). Below ``generation`` and ``uni``, which both build one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class GenerateResult:
    images: np.ndarray | None  # uint8 (N, H, W, C); None for caption-only modes
    captions: list[str]  # one per image: its class, its prompt, or its generated caption
    pngs: list[Path]  # one PNG per sample
    downloads: list[Path]  # grid.png, samples.npz, samples.zip (the PNGs)
    command: str
    seed: int
    texts: list[str] = field(default_factory=list)  # generated captions (UniDiffuser text modes)


def write_downloads(folder: Path, images: np.ndarray, labels) -> tuple[list[Path], list[Path]]:
    """The files ``ditkit sample --npz`` writes: one PNG per sample, grid.png, samples.npz; plus a zip."""
    import zipfile

    from ..pipelines import make_grid, write_npz
    from ..pipelines.folder import sample_name
    from ..pipelines.images import save_png

    (folder / "samples").mkdir()
    pngs = []
    for i, image in enumerate(images):
        path = folder / "samples" / f"{sample_name(i, None if labels is None else labels[i])}.png"
        save_png(image, path)
        pngs.append(path)
    save_png(make_grid(images, labels), folder / "grid.png")
    write_npz(folder / "samples.npz", images, labels)
    with zipfile.ZipFile(folder / "samples.zip", "w") as archive:
        for path in pngs:
            archive.write(path, f"samples/{path.name}")
    return pngs, [folder / "grid.png", folder / "samples.npz", folder / "samples.zip"]
