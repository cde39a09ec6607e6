"""Draw every UniDiffuser mode of one checkpoint as one figure (the README's picture of the modes).

    python examples/uni_modes_figure.py --checkpoint mnist-uni --out docs/mnist-uni-modes.png

One row per mode: its input (a test-split caption and image of the data the checkpoint was trained on — the
captioned shapes or MNIST digits; none for joint, i and t) then ``-n`` outputs, each an image, a caption, or
both (``ditkit.pipelines.uni_figure``). Same arguments, same figure.
"""

from __future__ import annotations

import argparse

from ditkit.checkpoints.unidiffuser import read_unidiffuser_config
from ditkit.data.captions import ComposedShapesDataset
from ditkit.diffusion.unidiffuser import MODES
from ditkit.evaluation.unidiffuser_eval import checkpoint_data, scoring_for
from ditkit.fileio import atomic_path
from ditkit.imaging import from_uint8, to_uint8
from ditkit.pipelines.uni_figure import ModeRow, draw_modes
from ditkit.pipelines.unidiffuser import MODE_INPUTS, UniDiffuser


def test_input(data: str, image_size: int, index: int):
    """(prompt, image (C, H, W) in [-1, 1]) of item ``index`` of the data's test items."""
    if data == "shapes":  # the pipeline resizes: the shapes need 16 px to be drawn
        shapes = ComposedShapesDataset(max(image_size, 16), "test", length=index + 1)
        return shapes.caption(index), from_uint8(shapes.render(index))
    captions, _, image = scoring_for(data).test_items(index + 1, image_size, "test")
    return captions[index], image(index)


def mode_figure(model: UniDiffuser, *, data: str = "shapes", n: int = 4, steps: int = 50, scale: float = 7.0,
                seed: int = 0, index: int = 0):
    """The figure: one row per mode, inputs taken from test item ``index`` of ``data``."""
    prompt, image = test_input(data, model.image_size, index)
    rows = []
    for mode in MODES:
        needs = MODE_INPUTS[mode]
        inputs = {"prompts": [prompt]} if needs == "prompts" else {"images": image[None]} if needs == "images" else {}
        out = model.generate(mode, n=n, steps=steps, scale=scale, seed=seed, **inputs)
        given = prompt if needs == "prompts" else to_uint8(image) if needs == "images" else None
        rows.append(ModeRow(mode, given, to_uint8(out.images) if out.images is not None else None, out.captions))
    return draw_modes(rows, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a UniDiffuser folder or bundled name (mnist-uni)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("-n", type=int, default=4, help="outputs per mode (default 4)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the model's recorded sampling)")
    parser.add_argument("--scale", type=float, help="guidance scale (default: the model's recorded one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0, help="which test item gives the inputs")
    args = parser.parse_args()
    model = UniDiffuser.load(args.checkpoint)
    data = scoring_for(checkpoint_data(read_unidiffuser_config(args.checkpoint))).data
    fig = mode_figure(model, data=data, n=args.n, steps=args.steps, scale=args.scale, seed=args.seed,
                      index=args.index)
    with atomic_path(args.out, suffix=".png") as tmp:  # written whole, then renamed: never half a PNG
        fig.savefig(tmp, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
