"""UniDiffuser on the captioned shapes, scored per mode (issue 10's evaluation).

- **t2i**: images generated from test-split captions, read by the attribute classifier
  (``evaluation.attributes``), against the scenes the captions describe;
- **i2t**: captions generated for test-split images, parsed back into scenes (``data.captions.parse_caption``),
  against the images' true scenes (an unparseable caption gets every attribute wrong);
- **joint**: generated (image, caption) pairs; the classifier's reading of the image against the parsed
  caption. Attributes are scored over the parseable captions; ``agreement`` (all attributes agree) counts an
  unparseable caption as a disagreement, so it is over every pair.

Each score has the per-attribute accuracies of ``score_scenes`` (count, shape, colour, size, position,
relation; all-correct), ``min_attribute`` (the worst attribute) and ``mean_attribute``.
"""

from __future__ import annotations

import torch

from ..data.captions import ComposedShapesDataset, parse_caption
from ..errors import DitkitError
from ..imaging import from_uint8
from .attributes import ATTRIBUTES, load_attribute_classifier, read_scenes, score_scenes

__all__ = ["score_captions", "score_agreement", "evaluate_t2i", "evaluate_i2t", "evaluate_joint",
           "evaluate_unidiffuser", "EVALUATIONS"]


def _headline(score: dict) -> dict:
    """``score_scenes``'s overall block with the worst and mean attribute accuracy added."""
    overall = dict(score["all"])
    values = [overall[k] for k in ATTRIBUTES if overall.get(k) is not None]
    overall["min_attribute"] = min(values) if values else None
    overall["mean_attribute"] = sum(values) / len(values) if values else None
    return {**score, "all": overall}


def score_captions(captions: list[str], targets) -> dict:
    """i2t: each caption parsed back into a scene and compared with the true scene (unparseable: all wrong)."""
    parsed = [parse_caption(c) for c in captions]
    seen = [list(p.objects) if p is not None else [] for p in parsed]  # (objects, cells) as the caption says
    score = _headline(score_scenes(seen, list(targets)))
    score["all"]["parsed"] = sum(p is not None for p in parsed) / max(len(parsed), 1)
    return score


def score_agreement(seen_objects: list, captions: list[str]) -> dict:
    """joint: what the classifier saw in each image (``read_scenes``) against its caption, parsed."""
    if len(seen_objects) != len(captions):
        raise DitkitError(f"{len(seen_objects)} images for {len(captions)} captions")
    parsed = [parse_caption(c) for c in captions]
    keep = [i for i, p in enumerate(parsed) if p is not None]
    if not keep:
        return {"all": {"parsed": 0.0, "agreement": 0.0, "count_prompts": len(captions)}}
    score = _headline(score_scenes([seen_objects[i] for i in keep], [parsed[i] for i in keep]))
    fraction = len(keep) / len(captions)
    score["all"].update(parsed=fraction, agreement=score["all"]["all_correct"] * fraction,
                        count_pairs=len(captions))
    return score


def _test_items(count: int, image_size: int, split: str):
    if count < 1:
        raise DitkitError(f"the evaluation needs at least 1 sample, got {count}")
    data = ComposedShapesDataset(image_size=image_size, split=split, length=count)
    return data, [data.scene(i) for i in range(count)]


def _batches(count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)


def evaluate_t2i(model, count: int = 500, *, classifier=None, split: str = "test", steps: int = 50,
                 scale: float = 7.0, seed: int = 0, batch_size: int = 50, **_) -> dict:
    data, targets = _test_items(count, model.image_size, split)
    images = []
    for k, (a, b) in enumerate(_batches(count, batch_size)):
        prompts = [data.caption(i) for i in range(a, b)]
        images.append(model.generate("t2i", prompts=prompts, steps=steps, scale=scale, seed=seed + k).images)
    seen = read_scenes(classifier or load_attribute_classifier(), torch.cat(images))
    return _headline(score_scenes(seen, targets))


def evaluate_i2t(model, count: int = 500, *, split: str = "test", steps: int = 50, scale: float = 7.0,
                 seed: int = 0, batch_size: int = 50, beam_size: int = 5, **_) -> dict:
    data, targets = _test_items(count, model.image_size, split)
    captions = []
    for k, (a, b) in enumerate(_batches(count, batch_size)):
        images = torch.stack([from_uint8(data.render(i)) for i in range(a, b)])  # (B, 3, H, W) in [-1, 1]
        captions += model.generate("i2t", images=images, steps=steps, scale=scale, seed=seed + k,
                                   beam_size=beam_size).captions
    score = score_captions(captions, targets)
    score["examples"] = [{"true": data.caption(i), "generated": captions[i]} for i in range(min(count, 8))]
    return score


def evaluate_joint(model, count: int = 500, *, classifier=None, steps: int = 50, scale: float = 7.0, seed: int = 0,
                   batch_size: int = 50, beam_size: int = 5, **_) -> dict:
    if count < 1:
        raise DitkitError(f"the evaluation needs at least 1 sample, got {count}")
    images, captions = [], []
    for k, (a, b) in enumerate(_batches(count, batch_size)):
        out = model.generate("joint", n=b - a, steps=steps, scale=scale, seed=seed + k, beam_size=beam_size)
        images.append(out.images)
        captions += out.captions
    seen = read_scenes(classifier or load_attribute_classifier(), torch.cat(images))
    score = score_agreement(seen, captions)
    score["examples"] = captions[:8]
    return score


EVALUATIONS = {"t2i": evaluate_t2i, "i2t": evaluate_i2t, "joint": evaluate_joint}


def evaluate_unidiffuser(model, modes=("t2i", "i2t", "joint"), count: int = 500, **settings) -> dict:
    """Every requested mode's score; ``settings``: steps, scale, seed, batch_size, beam_size, classifier."""
    unknown = [m for m in modes if m not in EVALUATIONS]
    if unknown:
        raise DitkitError(f"no evaluation for mode {unknown[0]!r}; choose from {', '.join(EVALUATIONS)}")
    if model.image_size < 16 or model.codec.image_channels != 3:
        raise DitkitError("the UniDiffuser evaluation is for models of the captioned shapes (3-channel, ≥ 16 px)")
    return {mode: EVALUATIONS[mode](model, count, **settings) for mode in modes}
