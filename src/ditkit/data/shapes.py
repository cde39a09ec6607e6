"""A procedural RGB dataset: one coloured shape per image, 10 classes, any resolution.

Item ``i`` is a pure function of ``(split, i, image_size)``: its scene (position, size, rotation,
colours) comes from a generator seeded by ``(split seed, i)`` and is described in relative units,
so the same item at 16 px and 256 px shows the same picture. Shapes are drawn 4× supersampled and
box-filtered down, so edges are anti-aliased and exact across platforms.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import DitkitError
from ..imaging import from_uint8
from .transforms import FlipMixin

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 210, 40),
    "magenta": (210, 50, 200),
    "cyan": (40, 200, 210),
    "orange": (240, 140, 30),
}
# (colour, shape) per class: every shape appears in two colours and colours repeat across shapes,
# so a model has to learn both attributes.
CLASSES = [
    ("red", "circle"), ("blue", "circle"),
    ("green", "square"), ("yellow", "square"),
    ("blue", "triangle"), ("orange", "triangle"),
    ("magenta", "diamond"), ("cyan", "diamond"),
    ("red", "cross"), ("green", "cross"),
]
CLASS_NAMES = [f"{c} {s}" for c, s in CLASSES]
_SPLIT_SEEDS = {"train": 20221219, "test": 20230314}
DEFAULT_LENGTHS = {"train": 10_000, "test": 2_000}


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        pts = [(x * 0.8, y * 0.8) for x, y in pts]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "diamond":
        pts = [(0, -1), (0.65, 0), (0, 1), (-0.65, 0)]
    elif shape == "cross":
        w = 0.33
        pts = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w)]
    elif shape == "star":  # five points, inner radius 0.45
        pts = [(rad * math.cos(a), rad * math.sin(a)) for k in range(10)
               for rad, a in [((1.0, 0.45)[k % 2], -math.pi / 2 + k * math.pi / 5)]]
    elif shape == "hexagon":
        pts = [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)]
    else:  # pragma: no cover - CLASSES only names the shapes above
        raise ValueError(shape)
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: tuple, cx: float, cy: float, r: float,
               angle: float) -> None:
    """Fill one shape of radius ``r`` (canvas pixels) centred at (cx, cy); also used by the captioned scenes."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, angle), fill=colour)


def render_shape(label: int, rng: np.random.Generator, image_size: int, supersample: int = 4) -> np.ndarray:
    """Draw class ``label`` with scene parameters from ``rng``; returns uint8 (H, W, 3)."""
    colour_name, shape = CLASSES[label]
    # Draw every random number up front, in a fixed order, so the scene never depends on the class.
    cx, cy = rng.uniform(0.32, 0.68, size=2)
    radius = rng.uniform(0.17, 0.3)
    angle = rng.uniform(-0.35, 0.35)
    background = rng.integers(15, 70, size=3)
    jitter = rng.integers(-20, 21, size=3)
    size = image_size * supersample
    canvas = Image.new("RGB", (size, size), tuple(int(v) for v in background))
    draw = ImageDraw.Draw(canvas)
    colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[colour_name], jitter))
    draw_shape(draw, shape, colour, cx * size, cy * size, radius * size, angle)
    if supersample > 1:
        canvas = canvas.resize((image_size, image_size), resample=Image.BOX)
    return np.array(canvas)  # a writable copy (torch.from_numpy warns on read-only arrays)


class ShapesDataset(FlipMixin, torch.utils.data.Dataset):
    """Coloured shapes; labels are balanced (``label = i % 10``)."""

    def __init__(self, image_size: int = 32, split: str = "train", length: int | None = None,
                 flip: bool = True, flip_seed: int = 0):
        if split == "all":
            raise DitkitError("the 'shapes' dataset has no 'all' split: it is procedural, choose train or test")
        if split not in _SPLIT_SEEDS:
            raise DitkitError(f"unknown split '{split}' (choose train or test)")
        if image_size < 8:
            raise DitkitError(f"image size {image_size} is too small for 'shapes' (use at least 8)")
        self.split = split
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        self.image_size = image_size
        self.channels = 3
        self.num_classes = len(CLASSES)
        self.class_names = list(CLASS_NAMES)
        self.flip = flip
        self.flip_seed = flip_seed
        self.name = "shapes"

    def __len__(self) -> int:
        return self.length

    def render(self, i: int) -> np.ndarray:
        """Item ``i`` as uint8 (H, W, 3), unflipped."""
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = np.random.default_rng([_SPLIT_SEEDS[self.split], i])
        return render_shape(i % len(CLASSES), rng, self.image_size)

    def __getitem__(self, i: int):
        arr = self.render(i)
        image = from_uint8(arr)
        return self._maybe_flip(image, i), i % len(CLASSES)
