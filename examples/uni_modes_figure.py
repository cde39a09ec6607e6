"""Draw every UniDiffuser mode of one checkpoint as one figure (the README's picture of the modes).

    python examples/uni_modes_figure.py --checkpoint shapes-uni --out docs/uni-modes.png

One row per mode: its input (a test-split caption or image of the captioned shapes; none for joint, i and t)
then ``-n`` outputs, each an image, a caption, or both. Same arguments, same figure.
"""

from __future__ import annotations

import argparse
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ditkit.data.captions import ComposedShapesDataset  # noqa: E402
from ditkit.diffusion.unidiffuser import MODES  # noqa: E402
from ditkit.fileio import atomic_path  # noqa: E402
from ditkit.imaging import from_uint8  # noqa: E402
from ditkit.pipelines.unidiffuser import MODE_INPUTS, UniDiffuser  # noqa: E402

DESCRIPTIONS = {"t2i": "text → image", "i2t": "image → text", "joint": "image and text together",
                "i": "image alone", "t": "text alone", "i2t2i": "image variation (image → text → image)",
                "t2i2t": "text variation (text → image → text)"}


def _show_image(ax, image: np.ndarray) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _show_text(ax, text: str) -> None:
    text = _short(text)
    ax.text(0.5, 0.5, textwrap.fill(text, 18), ha="center", va="center", fontsize=8, wrap=True)
    ax.axis("off")


def _as_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def mode_figure(model: UniDiffuser, *, n: int = 4, steps: int = 50, scale: float = 7.0, seed: int = 0,
                index: int = 0):
    """The figure: one row per mode, inputs taken from item ``index`` of the captioned shapes' test split."""
    data = ComposedShapesDataset(max(model.image_size, 16), "test", length=index + 1)  # the pipeline resizes
    prompt, image = data.caption(index), data.render(index)
    rows = len(MODES)
    fig, axes = plt.subplots(rows, n + 1, figsize=(1.6 * (n + 1), 1.9 * rows), squeeze=False)
    for row, mode in enumerate(MODES):
        needs = MODE_INPUTS[mode]
        inputs = {"prompts": [prompt]} if needs == "prompts" else {"images": from_uint8(image)[None]} \
            if needs == "images" else {}
        out = model.generate(mode, n=n, steps=steps, scale=scale, seed=seed, **inputs)
        first = axes[row][0]
        if needs == "prompts":
            _show_text(first, f"“{prompt}”")
        elif needs == "images":
            _show_image(first, image)
        else:
            _show_text(first, "(no input)")
        first.set_title(f"{mode}: {DESCRIPTIONS[mode]}", fontsize=8, loc="left")
        images = _as_uint8(out.images) if out.images is not None else None
        for col in range(n):
            ax = axes[row][col + 1]
            caption = out.captions[col] if out.captions else None
            if images is not None:
                _show_image(ax, images[col])
                if caption is not None:
                    ax.set_xlabel(textwrap.fill(_short(caption), 20), fontsize=7)
            else:
                _show_text(ax, caption)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a UniDiffuser folder or bundled name (shapes-uni)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("-n", type=int, default=4, help="outputs per mode (default 4)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--scale", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0, help="which test-split item gives the inputs")
    args = parser.parse_args()
    model = UniDiffuser.load(args.checkpoint)
    fig = mode_figure(model, n=args.n, steps=args.steps, scale=args.scale, seed=args.seed, index=args.index)
    with atomic_path(args.out, suffix=".png") as tmp:  # written whole, then renamed: never half a PNG
        fig.savefig(tmp, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
