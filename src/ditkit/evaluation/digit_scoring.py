"""UniDiffuser on the captioned MNIST digits (``data.captions.CaptionedDigits``), scored per mode.

- **t2i**: images generated from test-split captions, read by the bundled MNIST classifier
  (``evaluation.classifier``), against the digit each caption names;
- **i2t**: captions generated for test-split digits, read back into a digit (``parse_digit_caption``: any of
  the four ``DIGIT_TEMPLATES``, nothing else; an unreadable caption counts as wrong), against the true label;
- **joint**: generated (image, caption) pairs; the classifier's digit against the caption's (an unreadable
  caption disagrees). ``digit_share`` shows which digits were drawn, so a model that draws one digit only is
  visible beside a high agreement.

The functions here are ``unidiffuser_eval``'s scoring of the ``mnist`` data (its ``SCORINGS``).
"""

from __future__ import annotations

import torch

from ..data.captions import DIGIT_TEMPLATES, CaptionedDigits, digit_caption
from ..errors import DitkitError

__all__ = ["parse_digit_caption", "balanced_order", "digit_test_items", "load_digit_classifier", "read_digits",
           "score_digit_images", "score_digit_captions", "score_digit_agreement"]

DIGITS = range(10)
_CAPTION_DIGITS = {digit_caption(d, t): d for d in DIGITS for t in range(len(DIGIT_TEMPLATES))}


def parse_digit_caption(text: str) -> int | None:
    """The digit a caption names, if it is one of ``digit_caption``'s templates (case, spacing and a final
    full stop aside); None otherwise."""
    words = " ".join(str(text).lower().split())
    return _CAPTION_DIGITS.get(words[:-1].rstrip() if words.endswith(".") else words)


def balanced_order(labels: list[int]) -> list[int]:
    """The split's indices taking the digits in turn (0, 1, …, 9, 0, …: the bundled file is sorted by digit),
    so the first ``count`` items of any length cover every digit evenly."""
    rank, seen = [], {}
    for label in labels:
        rank.append(seen.get(label, 0))
        seen[label] = rank[-1] + 1
    return sorted(range(len(labels)), key=lambda i: (rank[i], labels[i]))


def digit_test_items(count: int, image_size: int, split: str = "test"):
    """``count`` items of the split, the digits in turn (cycled past its end): captions, labels and
    item → (1, H, W) image in [-1, 1]."""
    data = CaptionedDigits(image_size, split)
    order = balanced_order([data.label(i) for i in range(len(data))])
    index = [order[k % len(order)] for k in range(count)]
    return [data.caption(i) for i in index], [data.label(i) for i in index], lambda k: data.base[index[k]][0]


def load_digit_classifier(path: str | None = None, device="cpu"):
    """The bundled MNIST classifier (or ``PATH.safetensors`` + ``PATH.json`` of another one)."""
    from .classifier import load_classifier

    return load_classifier(path or "mnist")[0].to(device)


@torch.no_grad()
def read_digits(classifier, images: torch.Tensor, batch_size: int = 256) -> list[int]:
    """The digit the classifier reads in each image ((N, C, H, W) in [-1, 1])."""
    device = next(classifier.parameters()).device
    found = []
    for start in range(0, len(images), batch_size):
        batch = (images[start:start + batch_size].to(device).float().clamp(-1, 1) + 1) / 2  # it takes [0, 1]
        found += classifier(batch)["logits"].argmax(-1).cpu().tolist()
    return found


def _accuracy(pairs: list[tuple]) -> float | None:
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def _per_digit(got: list, want: list[int]) -> dict[str, float | None]:
    return {str(d): _accuracy([(g, w) for g, w in zip(got, want) if w == d]) for d in DIGITS}


def score_digit_images(seen: list[int], targets: list[int]) -> dict:
    """t2i: the classifier's digit of each image against the digit its prompt names."""
    per_digit = _per_digit(seen, targets)
    present = [v for v in per_digit.values() if v is not None]
    overall = {"accuracy": _accuracy(list(zip(seen, targets))), "min_digit": min(present) if present else None,
               "count_prompts": len(targets)}
    return {"all": overall, "per_digit": per_digit}


def score_digit_captions(captions: list[str], targets: list[int]) -> dict:
    """i2t: the digit each caption names (None if unreadable: wrong) against the true label."""
    score = score_digit_images([parse_digit_caption(c) for c in captions], targets)
    score["all"]["parsed"] = sum(parse_digit_caption(c) is not None for c in captions) / max(len(captions), 1)
    return score


def score_digit_agreement(seen: list[int], captions: list[str]) -> dict:
    """joint: whether the classifier's digit of each image is the one its own caption names."""
    if len(seen) != len(captions):
        raise DitkitError(f"{len(seen)} images for {len(captions)} captions")
    named = [parse_digit_caption(c) for c in captions]
    count = max(len(captions), 1)
    overall = {"agreement": sum(s == n for s, n in zip(seen, named)) / count,
               "parsed": sum(n is not None for n in named) / count, "count_pairs": len(captions)}
    return {"all": overall, "digit_share": {str(d): seen.count(d) / count for d in DIGITS}}
