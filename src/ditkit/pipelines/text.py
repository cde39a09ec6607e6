"""Sampling text-to-image models: prompts → per-sample text conditioning, guidance inputs, captioned grids.

A text model (block ``"cross-text"`` or ``"joint-text"``) takes prompts (``--prompt``, ``--prompts-file``)
where a label model takes classes; each is refused for the other kind with one clear message. Classifier-free guidance
contrasts each prompt with the null text (the empty prompt), or with ``negative_prompt`` when given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..codecs.text import TextCodec, TextEncoding, make_text_codec
from ..errors import DitkitError


def is_text_model(model) -> bool:
    return getattr(model.config, "text_dim", 0) > 0


def read_prompts_file(path: str) -> list[str]:
    """One prompt per line (blank lines skipped); a file that is not UTF-8 text is one clear error."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise DitkitError(f"prompts file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise DitkitError(f"the prompts file {path} is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    except OSError as exc:
        raise DitkitError(f"cannot read the prompts file {path}: {exc.strerror or exc}") from None
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise DitkitError(f"the prompts file {path} holds no prompts")
    return prompts


def check_conditioning(model, *, classes=None, prompts=None) -> None:
    """Labels for label models, prompts for text models; the other is refused before any work."""
    if is_text_model(model) and classes is not None:
        raise DitkitError("this checkpoint is a text-to-image model: give --prompt or --prompts-file, not --classes")
    if not is_text_model(model) and prompts is not None:
        kind = "class-conditional" if model.config.num_classes else "unconditional"
        raise DitkitError(f"this checkpoint is a {kind} model without a text encoder: it takes "
                          f"{'--classes' if model.config.num_classes else '--num-samples'}, not prompts")


def load_text_codec(config: dict | None, model, *, device="cpu") -> TextCodec:
    """The frozen text encoder a text checkpoint was trained with (its ``extra.text_encoder``)."""
    if not config:
        raise DitkitError("this text model's checkpoint does not name its text encoder (extra.text_encoder)")
    codec = make_text_codec(config, device=device)
    if codec.width != model.config.text_dim:
        raise DitkitError(f"the text encoder {config.get('spec')!r} makes {codec.width}-wide states but the model "
                          f"takes {model.config.text_dim}")
    return codec


@dataclass
class PromptPlan:
    """The prompt of every global sample index, and how to encode a batch of them."""

    prompts: list[str]
    codec: TextCodec
    negative_prompt: str | None = None

    def condition(self, indices: list[int], device) -> tuple[TextEncoding, TextEncoding]:
        """(the batch's prompts, their unconditional partner: the null text or the negative prompt)."""
        cond = self.codec.encode([self.prompts[i] for i in indices]).to(device)
        if self.negative_prompt is None:
            return cond, cond.nulled(torch.ones(len(indices), dtype=torch.bool))
        return cond, self.codec.encode([self.negative_prompt] * len(indices)).to(device)


def plan_prompts(prompts, num_samples: int | None, codec: TextCodec | None,
                 negative_prompt: str | None = None) -> PromptPlan:
    """Sample i gets prompt i mod P; ``num_samples`` alone draws that many from the null text."""
    if codec is None:
        raise DitkitError("a text model needs its text encoder to sample (pass text_codec)")
    prompts = [""] if prompts is None else [str(p) for p in prompts]
    if not prompts:
        raise DitkitError("the list of prompts is empty")
    n = len(prompts) if num_samples is None else int(num_samples)
    return PromptPlan([prompts[i % len(prompts)] for i in range(n)], codec, negative_prompt)


def captioned_grid(images: np.ndarray, captions: list[str], *, columns: int | None = None, scale: int = 4,
                   padding: int = 4, lines: int = 3) -> np.ndarray:
    """uint8 (N, H, W, C) images, each enlarged ``scale``× (nearest) with (up to ``lines`` lines of) its caption
    under it, in a grid."""
    n, h, w = images.shape[:3]
    columns = columns or min(n, 8)
    rows = -(-n // columns)
    cell_w, text_h = w * scale, 12 * lines + 4
    font = ImageFont.load_default()
    canvas = Image.new("RGB", (padding + columns * (cell_w + padding), padding + rows * (h * scale + text_h + padding)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        r, c = divmod(i, columns)
        left, top = padding + c * (cell_w + padding), padding + r * (h * scale + text_h + padding)
        tile = Image.fromarray(images[i].squeeze(-1) if images.shape[-1] == 1 else images[i]).convert("RGB")
        canvas.paste(tile.resize((cell_w, h * scale), Image.NEAREST), (left, top))
        for k, line in enumerate(_wrap(draw, captions[i] or "(no prompt)", font, cell_w)[:lines]):
            draw.text((left, top + h * scale + 2 + 12 * k), line, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]
