"""Captioned data for text-to-image: compositional shapes, captioned MNIST, and captioned image folders.

Every captioned dataset yields ``{"x": image, "caption": text}`` (a dict, so the training loop passes the
captions through to the text objective) with ``image`` a float tensor (C, H, W) in [-1, 1], and has
``num_classes == 0``, ``captioned == True`` and ``caption(i)``.

``ComposedShapesDataset``: one or two objects on a dark background, each with a shape (6), a colour (8),
a size (2) and a cell of a 3×3 grid; the caption is generated exactly from those attributes with one of a
few templates ("a large red circle in the top left", "a small blue star left of a large green square").
A fixed set of colour–shape pairs (``HELD_OUT_PAIRS``) never appears in the ``train`` or ``test`` splits;
the ``heldout`` split shows them (every scene has at least one), so compositional generalisation can be
measured. Item ``i`` is a pure function of ``(split, i, image_size)``, like ``shapes``. No flips: a
mirrored image would contradict "left of" and "in the top left".
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import DitkitError
from ..imaging import IMAGE_EXTENSIONS, from_uint8
from .shapes import COLOURS as _BASE_COLOURS
from .shapes import draw_shape

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "star")
COLOURS = dict(_BASE_COLOURS, white=(235, 235, 235))  # 8 colours; the background is always dark
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
POSITION_PHRASES = ("in the top left", "at the top", "in the top right", "on the left", "in the centre",
                    "on the right", "in the bottom left", "at the bottom", "in the bottom right")
RELATIONS = ("left of", "right of", "above", "below")
# Colour–shape pairs never shown in training: each shape and each colour still appears in training.
HELD_OUT_PAIRS = frozenset({("red", "triangle"), ("blue", "star"), ("green", "circle"), ("yellow", "cross"),
                            ("magenta", "square"), ("cyan", "diamond"), ("orange", "star"), ("white", "triangle")})
# Of the image side. Cells are 1/3 wide and centres move by at most 1/60, so two large neighbours never touch.
_RADIUS = {"small": (0.09, 0.10), "large": (0.13, 0.145)}
_JITTER = 0.05  # of a cell
_SPLIT_SEEDS = {"train": 20240601, "test": 20240602, "heldout": 20240603}
DEFAULT_LENGTHS = {"train": 50_000, "test": 2_000, "heldout": 2_000}
_CACHE_BYTES = 512 * 2**20  # rendered images kept in memory per dataset (50k at 32 px is 150 MiB)
SINGLE_TEMPLATES = ("a {a} {pos}", "{Pos}, a {a}", "there is a {a} {pos}")
PAIR_TEMPLATES = ("a {a} {rel} a {b}", "there is a {a} {rel} a {b}")


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    cell: int  # 0..8, row-major from the top left

    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def held_out(self) -> bool:
        return (self.colour, self.shape) in HELD_OUT_PAIRS


@dataclass(frozen=True)
class Scene:
    """What an image shows; ``relation`` relates objects[0] to objects[1] (None with one object)."""

    objects: tuple[ShapeObject, ...]
    relation: str | None = None

    def caption(self, template: int = 0) -> str:
        a = self.objects[0].phrase()
        if self.relation is None:
            pos = POSITION_PHRASES[self.objects[0].cell]
            text = SINGLE_TEMPLATES[template % len(SINGLE_TEMPLATES)]
            return text.format(a=a, pos=pos, Pos=pos[0].upper() + pos[1:])
        text = PAIR_TEMPLATES[template % len(PAIR_TEMPLATES)]
        return text.format(a=a, rel=self.relation, b=self.objects[1].phrase())

    @property
    def held_out(self) -> bool:
        return any(o.held_out for o in self.objects)

    def to_dict(self) -> dict:
        return {"objects": [asdict(o) for o in self.objects], "relation": self.relation}


def _related_cells(rng: np.random.Generator, relation: str) -> tuple[int, int]:
    """Cells (first, second) such that the first object is ``relation`` the second, in a shared row/column."""
    line = int(rng.integers(3))
    a, b = sorted(int(v) for v in rng.choice(3, size=2, replace=False))
    if relation == "right of" or relation == "below":
        a, b = b, a
    if relation in ("left of", "right of"):
        return line * 3 + a, line * 3 + b
    return a * 3 + line, b * 3 + line


def _draw_object(rng: np.random.Generator, split: str, *, force_held_out: bool, cell: int) -> ShapeObject:
    """Attributes of one object; train/test never draw a held-out pair, ``force_held_out`` always does."""
    while True:  # rejection sampling: deterministic, and at most a few draws (8 of 48 pairs are held out)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        held = (colour, shape) in HELD_OUT_PAIRS
        if held == force_held_out or (split == "heldout" and not force_held_out):
            return ShapeObject(shape, colour, SIZES[int(rng.integers(len(SIZES)))], cell)


def make_scene(split: str, index: int, two_object_prob: float = 0.5) -> tuple[Scene, int]:
    """The scene of item ``index`` of ``split`` and its caption template."""
    rng = np.random.default_rng([_SPLIT_SEEDS[split], index])
    template = int(rng.integers(6))
    held = split == "heldout"
    if rng.random() >= two_object_prob:
        return Scene((_draw_object(rng, split, force_held_out=held, cell=int(rng.integers(9))),)), template
    relation = RELATIONS[int(rng.integers(len(RELATIONS)))]
    cells = _related_cells(rng, relation)
    first_held = held and bool(rng.integers(2))  # held-out split: the held-out object is first or second
    objects = (_draw_object(rng, split, force_held_out=first_held, cell=cells[0]),
               _draw_object(rng, split, force_held_out=held and not first_held, cell=cells[1]))
    return Scene(objects, relation), template


def render_scene(scene: Scene, rng: np.random.Generator, image_size: int, supersample: int = 4) -> np.ndarray:
    """Draw ``scene`` (jitter, rotation and colour noise from ``rng``); uint8 (H, W, 3)."""
    size = image_size * supersample
    canvas = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(15, 60, size=3)))
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        row, col = divmod(obj.cell, 3)
        cx, cy = (col + 0.5 + rng.uniform(-_JITTER, _JITTER)) / 3, (row + 0.5 + rng.uniform(-_JITTER, _JITTER)) / 3
        radius = rng.uniform(*_RADIUS[obj.size])
        angle = rng.uniform(-0.2, 0.2)
        colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[obj.colour], rng.integers(-15, 16, size=3)))
        draw_shape(draw, obj.shape, colour, cx * size, cy * size, radius * size, angle)
    if supersample > 1:
        canvas = canvas.resize((image_size, image_size), resample=Image.BOX)
    return np.array(canvas)  # a writable copy: torch refuses to wrap read-only arrays silently


_OBJECT = rf"(?:a |an )?({'|'.join(SIZES)}) ({'|'.join(COLOUR_NAMES)}) ({'|'.join(SHAPES)})"
_POSITION = "|".join(POSITION_PHRASES)
_PAIR = re.compile(rf"^(?:there is )?{_OBJECT} ({'|'.join(RELATIONS)}) {_OBJECT}$")
_SINGLE = (re.compile(rf"^(?:there is )?{_OBJECT} ({_POSITION})$"), re.compile(rf"^({_POSITION}), {_OBJECT}$"))


def parse_caption(text: str) -> Scene | None:
    """The scene a caption of the captioned shapes describes (any template, any case), or None.

    The inverse of ``Scene.caption``: evaluation uses it for prompts typed by hand and for generated captions.
    """
    text = " ".join(str(text).lower().replace(".", " ").split())
    match = _PAIR.match(text)
    if match:
        g = match.groups()
        first, second = _related_cells(np.random.default_rng(0), g[3])  # some cells in that relation
        return Scene((ShapeObject(g[2], g[1], g[0], first), ShapeObject(g[6], g[5], g[4], second)), g[3])
    for pattern in _SINGLE:
        match = pattern.match(text)
        if match:
            g = match.groups()
            size, colour, shape, pos = (g[0], g[1], g[2], g[3]) if pattern is _SINGLE[0] else (g[1], g[2], g[3], g[0])
            return Scene((ShapeObject(shape, colour, size, POSITION_PHRASES.index(pos)),))
    return None


class ComposedShapesDataset(torch.utils.data.Dataset):
    """Compositional captioned shapes; ``scene(i)`` gives the attributes, ``caption(i)`` the text."""

    captioned = True

    def __init__(self, image_size: int = 32, split: str = "train", length: int | None = None,
                 two_object_prob: float = 0.5):
        if split not in _SPLIT_SEEDS:
            raise DitkitError(f"unknown split '{split}' for captioned shapes (choose train, test or heldout)")
        if image_size < 16:
            raise DitkitError(f"image size {image_size} is too small for captioned shapes (use at least 16)")
        if not 0.0 <= two_object_prob <= 1.0:
            raise DitkitError(f"the two-object probability must be in [0, 1], got {two_object_prob}")
        self.split, self.image_size, self.two_object_prob = split, int(image_size), float(two_object_prob)
        self.length = DEFAULT_LENGTHS[split] if length is None else int(length)
        self.channels, self.num_classes, self.class_names = 3, 0, []
        self.name = "shapes"
        self.flip = False
        # Rendering costs ~4 ms an image, as much as a small model's training step per image: keep each
        # rendered image (items are pure functions of their index), within a memory budget.
        fits = self.length * self.image_size ** 2 * 3 <= _CACHE_BYTES
        self._rendered = np.zeros((self.length, image_size, image_size, 3), np.uint8) if fits else None
        self._is_rendered = np.zeros(self.length, bool)

    def __len__(self) -> int:
        return self.length

    def scene(self, i: int) -> Scene:
        return make_scene(self.split, i, self.two_object_prob)[0]

    def caption(self, i: int) -> str:
        scene, template = make_scene(self.split, i, self.two_object_prob)
        return scene.caption(template)

    def render(self, i: int) -> np.ndarray:
        if not 0 <= i < self.length:
            raise IndexError(i)
        if self._rendered is not None and self._is_rendered[i]:
            return self._rendered[i].copy()
        scene, _ = make_scene(self.split, i, self.two_object_prob)
        image = render_scene(scene, np.random.default_rng([_SPLIT_SEEDS[self.split], i, 1]), self.image_size)
        if self._rendered is not None:
            self._rendered[i], self._is_rendered[i] = image, True
        return image

    def set_epoch(self, epoch: int) -> None:  # no flips, nothing varies by epoch
        pass

    def __getitem__(self, i: int):
        return {"x": from_uint8(self.render(i)), "caption": self.caption(i)}


# --------------------------------------------------------------------------------------------
# MNIST with captions from its labels
# --------------------------------------------------------------------------------------------

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = ("a handwritten {word}", "the digit {digit}", "a {word}", "the number {word}")


def digit_caption(label: int, template: int = 0) -> str:
    text = DIGIT_TEMPLATES[template % len(DIGIT_TEMPLATES)]
    return text.format(word=DIGIT_WORDS[label], digit=label)


class CaptionedDigits(torch.utils.data.Dataset):
    """The bundled MNIST digits with captions from their labels (template = index mod 4)."""

    captioned = True

    def __init__(self, image_size: int = 32, split: str = "train"):
        from .mnist import MNISTDigits

        self.base = MNISTDigits(image_size, split, flip=False)
        self.image_size, self.channels, self.num_classes, self.class_names = image_size, 1, 0, []
        self.name = "mnist"

    def __len__(self) -> int:
        return len(self.base)

    def caption(self, i: int) -> str:
        return digit_caption(self.base._labels[i], i)

    def label(self, i: int) -> int:
        """The digit item ``i`` shows (and its caption names)."""
        return int(self.base._labels[i])

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __getitem__(self, i: int):
        return {"x": self.base[i][0], "caption": self.caption(i)}


# --------------------------------------------------------------------------------------------
# A user's folder: metadata.jsonl (Hugging Face imagefolder) or a .txt beside each image
# --------------------------------------------------------------------------------------------


def read_metadata_jsonl(path: str) -> dict[str, str]:
    """``{file_name: text}`` from a ``metadata.jsonl``; a malformed line is one clear error naming it."""
    captions: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DitkitError(f"{path} line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("file_name"), str):
                raise DitkitError(f"{path} line {number} has no \"file_name\" string")
            text = row.get("text")
            if text is not None and not isinstance(text, str):
                raise DitkitError(f"{path} line {number}: \"text\" must be a string")
            captions[row["file_name"]] = text or ""
    return captions


def _folder_captions(root: str) -> list[tuple[str, str]]:
    """(image path, caption or '') for every image the folder's captions describe."""
    meta = os.path.join(root, "metadata.jsonl")
    if os.path.isfile(meta):
        pairs = [(os.path.join(root, name), text) for name, text in read_metadata_jsonl(meta).items()]
        missing = [p for p, _ in pairs if not os.path.isfile(p)]
        if missing:
            raise DitkitError(f"{meta} names {len(missing)} missing file(s), e.g. {os.path.relpath(missing[0], root)}")
        return sorted(pairs)
    images = sorted(f for f in os.listdir(root) if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
    pairs = []
    for name in images:
        txt = os.path.join(root, os.path.splitext(name)[0] + ".txt")
        text = ""
        if os.path.isfile(txt):
            try:
                with open(txt, encoding="utf-8") as f:
                    text = f.read().strip()
            except UnicodeDecodeError:
                raise DitkitError(f"caption file {txt} is not UTF-8 text") from None
        pairs.append((os.path.join(root, name), text))
    return pairs


class CaptionedFolder(torch.utils.data.Dataset):
    """Images with captions; images without a caption are counted (``num_uncaptioned``) and kept as
    unconditional examples (the empty caption is the null text), or refused with ``strict``."""

    captioned = True

    def __init__(self, root: str, image_size: int = 256, strict: bool = False):
        from .folder import load_image

        if not os.path.isdir(root):
            raise DitkitError(f"data folder not found: {root}")
        self.samples = _folder_captions(root)
        if not self.samples:
            raise DitkitError(f"no captioned images in {root} (add metadata.jsonl or a .txt beside each image)")
        empty = [p for p, text in self.samples if not text.strip()]
        self.num_uncaptioned = len(empty)
        if empty and strict:
            raise DitkitError(f"{len(empty)} of {len(self.samples)} images in {root} have no caption, e.g. "
                              f"{os.path.basename(empty[0])} (drop --strict to train them as unconditional)")
        if empty:
            warnings.warn(f"{len(empty)} of {len(self.samples)} images in {root} have no caption; they train the "
                          f"null (unconditional) text", stacklevel=2)
        self._load = load_image
        self.root, self.image_size, self.channels, self.num_classes, self.class_names = root, image_size, 3, 0, []
        self.name = os.path.basename(os.path.normpath(root))

    def __len__(self) -> int:
        return len(self.samples)

    def caption(self, i: int) -> str:
        return self.samples[i][1]

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitem__(self, i: int):
        path, text = self.samples[i]
        try:
            return {"x": from_uint8(np.array(self._load(path, self.image_size))), "caption": text}
        except OSError as exc:
            raise DitkitError(f"cannot decode image {path}: {exc}") from None


def load_captioned_dataset(source: str, image_size: int = 32, split: str = "train", strict: bool = False,
                           length: int | None = None):
    """``"shapes"`` (compositional scenes), ``"mnist"`` (digit captions) or a captioned image folder."""
    if source == "shapes":
        return ComposedShapesDataset(image_size, split, length=length)
    if source == "mnist":
        return CaptionedDigits(image_size, split)
    return CaptionedFolder(source, image_size, strict=strict)
