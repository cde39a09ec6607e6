"""UniDiffuser scored per mode on the data it was trained on (issue 10's evaluation; MNIST digits: issue 31).

- **t2i**: images generated from test-split captions, read by the data's classifier, against what the captions
  say;
- **i2t**: captions generated for test-split images, read back (parsed), against the images' truth (an
  unparseable caption is wrong);
- **joint**: generated (image, caption) pairs; the classifier's reading of the image against its own caption.

What a dataset needs for this is a ``UniScoring`` (its test items, classifier, how captions are read back and
how each mode is scored), registered in ``SCORINGS`` by the data name a checkpoint records
(``checkpoint_data``):

- ``shapes`` (the captioned shapes): the attribute classifier (``evaluation.attributes``) and
  ``data.captions.parse_caption``; each score has ``score_scenes``'s per-attribute accuracies (count, shape,
  colour, size, position, relation; all-correct), ``min_attribute`` and ``mean_attribute``. Joint attributes
  are scored over the parseable captions; ``agreement`` (all attributes agree) counts an unparseable caption as
  a disagreement, so it is over every pair;
- ``mnist`` (``data.captions.CaptionedDigits``): the bundled MNIST classifier and ``parse_digit_caption``
  (``evaluation.digit_scoring``): digit accuracy, joint agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..data.captions import ComposedShapesDataset, parse_caption
from ..errors import DitkitError
from ..imaging import from_uint8
from ..progress import progress_bar
from . import digit_scoring as digits
from .attributes import ATTRIBUTES, load_attribute_classifier, read_scenes, score_scenes

__all__ = ["score_captions", "score_agreement", "evaluate_t2i", "evaluate_i2t", "evaluate_joint",
           "evaluate_unidiffuser", "EVALUATIONS", "UniScoring", "SCORINGS", "scoring_for", "checkpoint_data"]


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


def _check_shapes_model(model) -> None:
    if model.image_size < 16 or model.codec.image_channels != 3:
        raise DitkitError("the shapes evaluation is for models of the captioned shapes (3-channel, ≥ 16 px)")


def _shapes_items(count: int, image_size: int, split: str):
    data = ComposedShapesDataset(image_size=image_size, split=split, length=count)
    return ([data.caption(i) for i in range(count)], [data.scene(i) for i in range(count)],
            lambda i: from_uint8(data.render(i)))


@dataclass(frozen=True)
class UniScoring:
    """How uni-eval scores a model trained on one dataset."""

    data: str
    test_items: Callable  # (count, image_size, split) → (captions, targets, item → (C, H, W) image in [-1, 1])
    load_classifier: Callable  # (path or None, device) → the classifier that reads generated images
    read_images: Callable  # (classifier, images) → what it reads in each image
    score_images: Callable  # t2i: (readings, targets) → score
    score_captions: Callable  # i2t: (captions, targets) → score
    score_agreement: Callable  # joint: (readings, captions) → score
    headline: dict  # mode → the score["all"] keys printed first
    check_model: Callable = lambda model: None  # raises a DitkitError for a model it cannot score


SHAPES_HEADLINE = ("min_attribute", "all_correct", "mean_attribute", "parsed")
SCORINGS = {
    "shapes": UniScoring(
        "shapes", test_items=_shapes_items, load_classifier=load_attribute_classifier, read_images=read_scenes,
        score_images=lambda seen, targets: _headline(score_scenes(seen, targets)), score_captions=score_captions,
        score_agreement=score_agreement, check_model=_check_shapes_model,
        headline={"t2i": SHAPES_HEADLINE, "i2t": SHAPES_HEADLINE,
                  "joint": ("agreement", "all_correct", "mean_attribute", "parsed")}),
    "mnist": UniScoring(
        "mnist", test_items=digits.digit_test_items, load_classifier=digits.load_digit_classifier,
        read_images=digits.read_digits, score_images=digits.score_digit_images,
        score_captions=digits.score_digit_captions, score_agreement=digits.score_digit_agreement,
        headline={"t2i": ("accuracy", "min_digit"), "i2t": ("accuracy", "parsed", "min_digit"),
                  "joint": ("agreement", "parsed")}),
}
DEFAULT_DATA = "shapes"  # a checkpoint that records no training data (built in code) is scored as before


def scoring_for(data: str | None) -> UniScoring:
    """The scoring of a dataset name (None: ``DEFAULT_DATA``); one DitkitError naming those known."""
    name = data or DEFAULT_DATA
    if name not in SCORINGS:
        raise DitkitError(f"uni-eval cannot score a model trained on {name!r}: it knows {', '.join(SCORINGS)}")
    return SCORINGS[name]


def checkpoint_data(config: dict) -> str | None:
    """The training data a UniDiffuser folder's config records (a bundled model's ``training_data``, else the
    run's ``train_config``), or None."""
    extra = config.get("extra") or {}
    return (extra.get("training_data") or {}).get("name") or (extra.get("train_config") or {}).get("data")


def _check_count(count: int) -> None:
    if count < 1:
        raise DitkitError(f"the evaluation needs at least 1 sample, got {count}")


def _batches(count: int, batch_size: int, bar=None):
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)
        if bar is not None:  # the progress of evaluate_unidiffuser(progress=True)
            bar.update(min(start + batch_size, count) - start)


def _classifier(scoring: UniScoring, classifier, model):
    return classifier if classifier is not None else scoring.load_classifier(None, model.device)


def evaluate_t2i(model, count: int = 500, *, scoring: UniScoring = SCORINGS["shapes"], classifier=None,
                 split: str = "test", steps: int | None = None, scale: float | None = None,
                 sampler: str | None = None, seed: int = 0, batch_size: int = 50, precision: str = "fp32",
                 bar=None, **_) -> dict:
    _check_count(count)
    prompts, targets, _image = scoring.test_items(count, model.image_size, split)
    images = [model.generate("t2i", prompts=prompts[a:b], steps=steps, scale=scale, seed=seed + k,
                             sampler=sampler, long_prompts="truncate", precision=precision).images
              for k, (a, b) in enumerate(_batches(count, batch_size, bar))]
    seen = scoring.read_images(_classifier(scoring, classifier, model), torch.cat(images))
    return scoring.score_images(seen, targets)


def evaluate_i2t(model, count: int = 500, *, scoring: UniScoring = SCORINGS["shapes"], split: str = "test",
                 steps: int | None = None, scale: float | None = None, sampler: str | None = None, seed: int = 0,
                 batch_size: int = 50, precision: str = "fp32", beam_size: int = 5, bar=None, **_) -> dict:
    _check_count(count)
    truth, targets, image = scoring.test_items(count, model.image_size, split)
    captions = []
    for k, (a, b) in enumerate(_batches(count, batch_size, bar)):
        images = torch.stack([image(i) for i in range(a, b)])  # (B, C, H, W) in [-1, 1]
        captions += model.generate("i2t", images=images, steps=steps, scale=scale, seed=seed + k,
                                   beam_size=beam_size, sampler=sampler, precision=precision).captions
    score = scoring.score_captions(captions, targets)
    score["examples"] = [{"true": truth[i], "generated": captions[i]} for i in range(min(count, 8))]
    return score


def evaluate_joint(model, count: int = 500, *, scoring: UniScoring = SCORINGS["shapes"], classifier=None,
                   steps: int | None = None, scale: float | None = None, sampler: str | None = None, seed: int = 0,
                   batch_size: int = 50, precision: str = "fp32", beam_size: int = 5, bar=None, **_) -> dict:
    _check_count(count)
    images, captions = [], []
    for k, (a, b) in enumerate(_batches(count, batch_size, bar)):
        out = model.generate("joint", n=b - a, steps=steps, scale=scale, seed=seed + k, beam_size=beam_size,
                             sampler=sampler, precision=precision)
        images.append(out.images)
        captions += out.captions
    seen = scoring.read_images(_classifier(scoring, classifier, model), torch.cat(images))
    score = scoring.score_agreement(seen, captions)
    score["examples"] = captions[:8]
    return score


EVALUATIONS = {"t2i": evaluate_t2i, "i2t": evaluate_i2t, "joint": evaluate_joint}


def evaluate_unidiffuser(model, modes=("t2i", "i2t", "joint"), count: int = 500, *, data: str | None = None,
                         progress: bool = False, **settings) -> dict:
    """Every requested mode's score on ``data``'s test split (``SCORINGS``; None: ``DEFAULT_DATA``);
    ``settings``: sampler, steps, scale (None: the model's recorded ones), seed, batch_size, beam_size, classifier,
    precision (the U-ViT's arithmetic: fp32, bf16 or auto). ``progress``: samples done, as ``sample``
    shows it (plain lines off a terminal)."""
    unknown = [m for m in modes if m not in EVALUATIONS]
    if unknown:
        raise DitkitError(f"no evaluation for mode {unknown[0]!r}; choose from {', '.join(EVALUATIONS)}")
    scoring = scoring_for(data)
    scoring.check_model(model)
    with progress_bar(total=count * len(modes), desc="uni-eval " + "+".join(modes), unit="sample",
                      disable=not progress) as bar:
        return {mode: EVALUATIONS[mode](model, count, scoring=scoring, bar=bar, **settings) for mode in modes}
