"""The one place for image conventions: file extensions we read, and the [-1, 1] ↔ uint8 mapping."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# Every reader of image files (training folders, evaluation folders, the app) accepts exactly these.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) floats in [-1, 1] → uint8 channels-last (N, H, W, C) / (H, W, C), rounded."""
    images = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.movedim(-3, -1).contiguous().numpy()


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W), (H, W, C) or (N, H, W, C) → float channels-first in [-1, 1] (the models' data range)."""
    if array.ndim == 2:
        array = array[:, :, None]
    t = torch.from_numpy(np.array(array, dtype=np.float32)).movedim(-1, -3).contiguous()  # a copy: inputs may be read-only
    return t.div_(127.5).sub_(1.0)


def to_8bit(image: Image.Image) -> Image.Image:
    """A PIL image as "L" (grey: 1-, 8-, 16- and 32-bit) or "RGB" (everything else). Deep grey is scaled to
    8 bits (65535 → 255); PIL's own ``convert("L")`` clips it instead, turning most of a 16-bit image white."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257.0  # 16-bit range → 8-bit
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))  # 2-D uint8: "L"
    return image.convert("L" if image.mode in ("L", "1") else "RGB")
