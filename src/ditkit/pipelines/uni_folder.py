"""``ditkit uni``'s outputs: one folder per run, written whole (``atomic_dir``) so it is complete or absent.

    0000.png …        generated images (image modes)
    grid.png          the images tiled
    captions.txt      generated captions, one per line (text modes)
    run.json          mode, inputs, seed, settings, notes on converted inputs, the command, the ditkit version
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DitkitError
from ..fileio import atomic_dir
from ..imaging import IMAGE_EXTENSIONS, from_uint8, to_uint8
from ..version import __version__
from .images import make_grid
from .unidiffuser import UniOutput

__all__ = ["read_images", "write_uni_folder"]


def read_images(paths, notes: list[str]) -> torch.Tensor:
    """Image files → (N, C, H, W) in [-1, 1]; grey stays 1 channel, alpha and palettes become RGB (noted).
    Files of different sizes are each resized later by the model; here they must share one size to stack."""
    images = []
    for path in paths:
        path = Path(path).expanduser()
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DitkitError(f"{path} is not an image file ({', '.join(IMAGE_EXTENSIONS)}).")
        try:
            with Image.open(path) as image:
                mode = image.mode
                image = image.convert("L" if mode in ("L", "I", "I;16", "1") else "RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise DitkitError(f"cannot read the image {path} ({str(exc).splitlines()[0]}).") from None
        if mode not in ("L", "RGB"):
            notes.append(f"{path.name}: converted {mode} to {image.mode}")
        images.append(from_uint8(np.array(image)))  # (C, H, W)
    sizes = {tuple(i.shape) for i in images}
    if len(sizes) > 1:
        raise DitkitError(f"the input images differ in size or channels ({sorted(sizes)}); pass one kind per run.")
    return torch.stack(images)  # (N, C, H, W)


def write_uni_folder(out: UniOutput, folder, settings: dict) -> list[Path]:
    """Write a run's images, captions and run.json to ``folder`` (replaced whole); returns the files written."""
    folder = Path(folder).expanduser()
    if folder.exists() and not (folder.is_dir() and (not any(folder.iterdir()) or (folder / "run.json").is_file())):
        raise DitkitError(f"{folder} exists and is not a ditkit uni output folder, so it was not overwritten.")
    names = []
    with atomic_dir(folder) as tmp:
        if out.images is not None:
            pixels = to_uint8(out.images)  # (N, H, W, C)
            for i, image in enumerate(pixels):
                Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(tmp / f"{i:04d}.png")
                names.append(f"{i:04d}.png")
            grid = make_grid(pixels)
            Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(tmp / "grid.png")
            names.append("grid.png")
        if out.captions is not None:
            (tmp / "captions.txt").write_text("".join(f"{c}\n" for c in out.captions), encoding="utf-8")
            names.append("captions.txt")
        run = {"mode": out.mode, **settings, "captions": out.captions, "notes": out.notes,
               "command": " ".join(shlex.quote(a) for a in ["ditkit", *sys.argv[1:]]), "ditkit_version": __version__}
        (tmp / "run.json").write_text(json.dumps(run, indent=2) + "\n")
        names.append("run.json")
    return [folder / name for name in names]
