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
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import DitkitError
from ..diffusion.unidiffuser import MODES
from ..fileio import atomic_dir, check_replaceable, check_writable
from ..imaging import IMAGE_EXTENSIONS, from_uint8, to_8bit, to_uint8
from ..version import __version__
from .images import make_grid, save_png
from .unidiffuser import UniOutput

__all__ = ["check_uni_out", "is_uni_output", "read_image_list", "read_images", "write_uni_folder"]

FORMAT = "ditkit-uni-output"
WHAT = "a `ditkit uni` output folder (its run.json says \"format\": \"ditkit-uni-output\")"


def is_uni_output(folder) -> bool:
    """Whether ``folder`` is a ``ditkit uni`` output (its own marker: run.json's format; older ones: a uni mode,
    notes and a ditkit version). A ``ditkit sample`` folder, which has a run.json too (with settings), is not."""
    try:
        run = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
        if run.get("format") is not None:
            return run["format"] == FORMAT
        return run.get("mode") in MODES and {"notes", "ditkit_version"} <= set(run) and "settings" not in run
    except (OSError, ValueError, AttributeError):
        return False


def check_uni_out(folder) -> Path:
    """Before any work: ``folder`` may be absent, empty or an earlier ``ditkit uni`` output (replaced whole), in a
    writable place; anything else is one error line and stays untouched."""
    folder = check_replaceable(folder, is_uni_output, WHAT)
    check_writable(folder.absolute().parent)
    return folder


def read_image_list(paths, notes: list[str]) -> list[torch.Tensor]:
    """Image files → (C, H, W) tensors in [-1, 1]; grey (16-bit scaled to 8) stays 1 channel, alpha and
    palettes become RGB (noted). Sizes may differ: the model centre-crops and resizes each."""
    images = []
    for path in paths:
        path = Path(path).expanduser()
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DitkitError(f"{path} is not an image file ({', '.join(IMAGE_EXTENSIONS)}).")
        try:
            with Image.open(path) as image:
                mode = image.mode
                image = to_8bit(image)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DitkitError(f"cannot read the image {path} ({str(exc).splitlines()[0]}).") from None
        if mode not in ("L", "RGB"):
            deep = " (16-bit scaled to 8-bit)" if mode.startswith("I") else ""
            notes.append(f"{path.name}: converted {mode} to {image.mode}{deep}")
        images.append(from_uint8(np.array(image)))  # (C, H, W)
    return images


def read_images(paths, notes: list[str]) -> torch.Tensor:
    """Image files → (N, C, H, W) in [-1, 1] (``read_image_list``); files of different sizes are centre-cropped
    and resized to the smallest one's square here (noted), so they stack; the model resizes them to its size."""
    images = read_image_list(paths, notes)
    if len({tuple(i.shape[-2:]) for i in images}) > 1:
        side = min(min(i.shape[-2:]) for i in images)
        images = [_square(i, side) for i in images]
        notes.append(f"centre-cropped and resized {len(images)} input images of different sizes to {side}x{side}")
    if len({i.shape[0] for i in images}) > 1:
        images = [i.expand(3, -1, -1) for i in images]  # grey beside colour: all RGB
        notes.append("converted the grey input images to RGB beside the colour ones")
    return torch.stack(images)  # (N, C, H, W)


def _square(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = image[None, :, top:top + s, left:left + s]
    return F.interpolate(crop, size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0].clamp(-1, 1)


def write_uni_folder(out: UniOutput, folder, settings: dict) -> list[Path]:
    """Write a run's images, captions and run.json to ``folder`` (absent, empty or an earlier uni output, replaced
    whole); returns the files written."""
    folder = check_uni_out(folder)
    names = []
    with atomic_dir(folder, is_uni_output, WHAT) as tmp:
        if out.images is not None:
            pixels = to_uint8(out.images)  # (N, H, W, C)
            for i, image in enumerate(pixels):
                save_png(image, tmp / f"{i:04d}.png")  # as `ditkit sample` writes its samples and grid
                names.append(f"{i:04d}.png")
            save_png(make_grid(pixels), tmp / "grid.png")
            names.append("grid.png")
        if out.captions is not None:
            (tmp / "captions.txt").write_text("".join(f"{c}\n" for c in out.captions), encoding="utf-8")
            names.append("captions.txt")
        run = {"format": FORMAT, "mode": out.mode, **settings, "captions": out.captions, "notes": out.notes,
               "command": settings.get("command") or shlex.join(["ditkit", *sys.argv[1:]]),
               "ditkit_version": __version__}
        (tmp / "run.json").write_text(json.dumps(run, indent=2) + "\n")
        names.append("run.json")
    return [folder / name for name in names]
