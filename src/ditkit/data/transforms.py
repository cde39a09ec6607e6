"""Image preprocessing shared by every dataset: the ADM center crop and tensor conversion."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from PIL import Image


def center_crop_arr(pil_image: Image.Image, image_size: int) -> Image.Image:
    """The ADM/DiT center crop: shrink with BOX while the image is at least twice the target,
    then BICUBIC so the short side equals ``image_size``, then crop the center square.

    Halving with BOX first avoids the aliasing a single large bicubic downscale would leave.
    """
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.asarray(pil_image)
    top = (arr.shape[0] - image_size) // 2
    left = (arr.shape[1] - image_size) // 2
    return Image.fromarray(arr[top : top + image_size, left : left + image_size])


def flip_decision(seed: int, epoch: int, index: int) -> bool:
    """Whether item ``index`` is horizontally flipped in ``epoch``.

    A pure function (not the global RNG), so flips are identical across DataLoader workers,
    processes and a resumed run — this is what makes resume exact.
    """
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=1).digest()
    return bool(digest[0] & 1)


class FlipMixin:
    """Deterministic per-(epoch, index) horizontal flips; the trainer calls ``set_epoch``."""

    flip: bool = False
    flip_seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _maybe_flip(self, image: torch.Tensor, index: int) -> torch.Tensor:
        if self.flip and flip_decision(self.flip_seed, self.epoch, index):
            return image.flip(-1)
        return image
