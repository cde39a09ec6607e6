"""Which class each sample gets: numbers or the class names a checkpoint stores, checked against the model."""

from __future__ import annotations

from typing import Sequence

from ..errors import DitkitError


def classes_to_labels(classes: Sequence[str | int], class_names: Sequence[str] | None, num_classes: int) -> list[int]:
    """``("cat", "3")`` → label numbers: a checkpoint's class name (exact, else case-insensitive) or a number."""
    names = list(class_names or [])
    folded: dict[str, int] = {}
    for i, name in enumerate(names):
        folded.setdefault(name.casefold(), i)
    labels = []
    for item in classes:
        text = str(item).strip()
        if text in names:
            labels.append(names.index(text))
        elif text.casefold() in folded:
            labels.append(folded[text.casefold()])
        else:
            try:
                labels.append(int(text))
            except ValueError:
                raise DitkitError(_unknown_class(text, names, num_classes)) from None
    return labels


def _unknown_class(text: str, names: list[str], num_classes: int) -> str:
    if not names:
        return (f"unknown class {text!r}: this checkpoint stores no class names, so give class numbers "
                f"0..{num_classes - 1}")
    shown = ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
    return f"unknown class {text!r}; this model's classes are: {shown} (or numbers 0..{num_classes - 1})"


def resolve_labels(num_classes: int, labels: Sequence[int] | None, num_samples: int | None) -> tuple[int, list[int] | None]:
    """The run's size and per-sample labels (label of global sample i), checked against the model.

    Class-conditional: ``labels`` alone gives one sample per label; ``num_samples`` alone spreads the
    samples evenly over all classes (sample i gets class i mod K); both cycle through ``labels``; neither
    draws one sample per class. Unconditional (``num_classes == 0``): only ``num_samples``.
    """
    if num_samples is not None and int(num_samples) < 1:
        raise DitkitError(f"the number of samples must be at least 1, got {num_samples}")
    if num_classes == 0:
        if labels is not None:
            raise DitkitError("this model is unconditional (num_classes 0): it takes no class labels; "
                              "ask for --num-samples instead")
        if num_samples is None:
            raise DitkitError("say how many samples to draw (--num-samples) for this unconditional model")
        return int(num_samples), None
    # no labels: every class in turn (alone, one sample per class: the first thing a new user sees)
    labels = list(range(num_classes)) if labels is None else [int(y) for y in labels]
    if not labels:
        raise DitkitError("the list of class labels is empty")
    bad = [y for y in labels if not 0 <= y < num_classes]
    if bad:
        raise DitkitError(f"class label {bad[0]} is out of range: this model has {num_classes} classes "
                          f"(0..{num_classes - 1})")
    n = len(labels) if num_samples is None else int(num_samples)
    return n, [labels[i % len(labels)] for i in range(n)]
