"""Attribute accuracy of text-to-image samples of the captioned shapes, by a bundled attribute classifier.

The classifier (``assets/classifiers/shapes-attributes.*``, trained by
``python -m ditkit.evaluation.train_attributes``) reads a 32×32 image as a 3×3 grid of cells and has one
head per attribute, applied to every cell: shape (empty or one of the 6 shapes), colour (8) and size (2).
A scene is then read back as the objects in the non-empty cells, each with its cell as its position.

``score_scenes(predicted, targets)`` compares what an image shows with what its prompt asked for:
per attribute (shape, colour, size, position for one-object prompts, relation for two-object prompts, the
object count) and all-correct, reported separately for seen and held-out colour–shape combinations.
"""

from __future__ import annotations

import json
import os
from importlib import resources

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..data.captions import COLOUR_NAMES, SHAPES, SIZES, Scene, ShapeObject
from ..errors import DitkitError

ATTRIBUTES = ("count", "shape", "colour", "size", "position", "relation")
# Reported beside the attributes, not part of all-correct: of the relation prompts, the share whose matched pair
# lies on one row ("left of", "right of") or one column ("above", "below"), as every captioned scene does.
# "relation" only asks for the order (a diagonal pair can pass); this says whether the axis was understood.
DIAGNOSTICS = ("relation_axis",)
_HEADS = {"shape": len(SHAPES) + 1, "colour": len(COLOUR_NAMES), "size": len(SIZES)}  # shape 0 = empty cell


class AttributeClassifier(nn.Module):
    """A fully convolutional reader of the 3×3 grid: conv stages (32 → 16 → 8 px, receptive field ~29 px),
    the feature vector sampled at each cell's centre, and 1×1 heads shared by all nine cells (a shape is
    learned once for every position).

    Input (N, 3, H, W) in [-1, 1] (other sizes are resized to 32); output: dict of logits (N, 9, K).
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.config = dict(width=width)

        def convs(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                    nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.stages = nn.Sequential(*convs(3, width), nn.MaxPool2d(2), *convs(width, 2 * width), nn.MaxPool2d(2),
                                    *convs(2 * width, 4 * width))
        self.heads = nn.ModuleDict({name: nn.Conv2d(4 * width, k, 1) for name, k in _HEADS.items()})
        centres = torch.tensor([-2 / 3, 0.0, 2 / 3])  # cell centres in grid_sample's [-1, 1] coordinates
        grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)  # (3, 3, [x, y])
        self.register_buffer("cell_centres", grid.unsqueeze(0), persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.shape[-1] != 32 or images.shape[-2] != 32:
            images = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        features = self.stages(images)  # (N, 4w, 8, 8)
        grid = self.cell_centres.expand(len(images), -1, -1, -1)
        cells = F.grid_sample(features, grid, mode="bilinear", align_corners=False)  # (N, 4w, 3, 3)
        return {name: head(cells).flatten(2).transpose(1, 2) for name, head in self.heads.items()}  # (N, 9, K)


def scene_targets(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    """Per-cell training targets (N, 9): shape index (0 = empty), colour and size (-100 = ignored)."""
    n = len(scenes)
    shape = torch.zeros(n, 9, dtype=torch.long)
    colour = torch.full((n, 9), -100, dtype=torch.long)
    size = torch.full((n, 9), -100, dtype=torch.long)
    for i, scene in enumerate(scenes):
        for obj in scene.objects:
            shape[i, obj.cell] = SHAPES.index(obj.shape) + 1
            colour[i, obj.cell] = COLOUR_NAMES.index(obj.colour)
            size[i, obj.cell] = SIZES.index(obj.size)
    return {"shape": shape, "colour": colour, "size": size}


def bundled_path(name: str = "shapes-attributes") -> str:
    return str(resources.files("ditkit") / "assets" / "classifiers" / f"{name}.safetensors")


def load_attribute_classifier(path: str | None = None, device="cpu") -> AttributeClassifier:
    """The bundled attribute classifier (or one saved at ``path``), in eval mode."""
    path = path or bundled_path()
    meta_path = os.path.splitext(path)[0] + ".json"
    if not os.path.isfile(path) or not os.path.isfile(meta_path):
        raise DitkitError(f"attribute classifier not found at {path} (train it with "
                          f"python -m ditkit.evaluation.train_attributes)")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    model = AttributeClassifier(**meta["model"])
    model.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    return model.eval().to(device)


@torch.no_grad()
def read_scenes(classifier: AttributeClassifier, images: torch.Tensor, batch_size: int = 256) -> list[list[ShapeObject]]:
    """The objects the classifier sees in each image ((N, 3, H, W) in [-1, 1]), in cell order."""
    device = next(classifier.parameters()).device
    found = []
    for start in range(0, len(images), batch_size):
        logits = classifier(images[start:start + batch_size].to(device).float())
        shape, colour, size = (logits[k].argmax(-1).cpu() for k in ("shape", "colour", "size"))
        for i in range(len(shape)):
            found.append([ShapeObject(SHAPES[int(shape[i, c]) - 1], COLOUR_NAMES[int(colour[i, c])],
                                      SIZES[int(size[i, c])], c) for c in range(9) if shape[i, c] > 0])
    return found


def _relation_holds(relation: str, a: int, b: int) -> bool:
    (ra, ca), (rb, cb) = divmod(a, 3), divmod(b, 3)
    return {"left of": ca < cb, "right of": ca > cb, "above": ra < rb, "below": ra > rb}[relation]


def _on_axis(relation: str, a: int, b: int) -> bool:
    (ra, ca), (rb, cb) = divmod(a, 3), divmod(b, 3)
    return ra == rb if relation in ("left of", "right of") else ca == cb


def _match(target: Scene, seen: list[ShapeObject]) -> dict[str, bool | None]:
    """Which attributes of ``target`` the image got right (None = not applicable to this prompt), and the
    ``DIAGNOSTICS``."""
    result = {"count": len(seen) == len(target.objects), "position": None, "relation": None, "relation_axis": None}
    if len(target.objects) == 1:
        want = target.objects[0]
        got = next((o for o in seen if o.cell == want.cell), seen[0] if seen else None)
        result["position"] = got is not None and got.cell == want.cell
        pairs = [(want, got)]
    else:  # the pairing of described and seen objects that agrees on the most attributes
        candidates = [(a, b) for a in seen for b in seen if a.cell != b.cell] or [(None, None)]

        def agree(pair):  # attributes in common, then (for twins alike in everything) the relation
            same = sum(o is not None and getattr(o, k) == getattr(w, k)
                       for w, o in zip(target.objects, pair) for k in ("shape", "colour", "size"))
            return same, pair[0] is not None and _relation_holds(target.relation, pair[0].cell, pair[1].cell)

        best = max(candidates, key=agree)
        pairs = list(zip(target.objects, best))
        result["relation"] = best[0] is not None and _relation_holds(target.relation, best[0].cell, best[1].cell)
        result["relation_axis"] = best[0] is not None and _on_axis(target.relation, best[0].cell, best[1].cell)
    for key in ("shape", "colour", "size"):
        result[key] = all(got is not None and getattr(got, key) == getattr(want, key) for want, got in pairs)
    return result


def score_scenes(seen: list[list[ShapeObject]], targets: list[Scene]) -> dict:
    """Accuracy per attribute and all-correct, over all prompts and split into seen / held-out combinations."""
    if len(seen) != len(targets):
        raise DitkitError(f"{len(seen)} images for {len(targets)} prompts")
    rows = [(_match(t, s), t.held_out) for s, t in zip(seen, targets)]

    def summarise(subset):
        out = {"count_prompts": len(subset)}
        for key in ATTRIBUTES + DIAGNOSTICS:
            values = [r[key] for r, _ in subset if r[key] is not None]
            out[key] = sum(values) / len(values) if values else None
        out["all_correct"] = sum(all(r[k] for k in ATTRIBUTES if r[k] is not None)
                                 for r, _ in subset) / max(len(subset), 1)
        return out

    return {"all": summarise(rows), "seen": summarise([r for r in rows if not r[1]]),
            "held_out": summarise([r for r in rows if r[1]])}


def prompt_rows(seen: list[list[ShapeObject]], targets: list[Scene], prompts: list[str]) -> list[dict]:
    """Per prompt: the attributes it got right and wrong (those that apply) and what the classifier read,
    e.g. ``"large red circle @0"`` (cell 0 = top left) — where the summary's numbers come from."""
    rows = []
    for prompt, read, target in zip(prompts, seen, targets):
        result = _match(target, read)
        rows.append({"prompt": prompt, "held_out": target.held_out,
                     "right": [k for k in ATTRIBUTES if result[k] is True],
                     "wrong": [k for k in ATTRIBUTES if result[k] is False],
                     "read": [f"{o.phrase()} @{o.cell}" for o in read]})
    return rows


def score_images(images: torch.Tensor, targets: list[Scene], classifier: AttributeClassifier | None = None) -> dict:
    """``score_scenes`` of what the (bundled) classifier reads in ``images`` against ``targets``."""
    classifier = classifier or load_attribute_classifier()
    return score_scenes(read_scenes(classifier, images), targets)
