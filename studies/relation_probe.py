"""Does a text-to-image checkpoint read relation words? Same objects, same noise, only the relation changed.

    python studies/relation_probe.py [CHECKPOINT] [--pairs 64]     # shapes-t2i: ~6 min on 2 CPU cores

The first ``--pairs`` two-object scenes of the captioned shapes' test split are drawn five times with the same
seed (noise is per sample index, so each scene starts from the same noise every time): under each of the four
relations ("a {A} left of a {B}", ...), and, as a yardstick, "left of" with A's colour changed. Prints JSON:

- ``layout``: per asked relation, where the bundled attribute classifier finds A relative to B (same row:
  ``A left`` / ``A right``; same column: ``A above`` / ``A below``; ``diagonal``; ``unreadable`` when it does not
  see exactly two objects matching A's and B's colour and shape). A model that reads the relation puts most of
  each row's mass in the asked column; one that ignores it has four alike rows.
- ``mean_abs_change_from_left_of``: the mean absolute pixel change (images in [-1, 1]) from the "left of" image to the
  "right of" and "above" images, and to the image with A's colour changed.
"""

import argparse
import collections
import json

import torch

from ditkit.data.captions import COLOUR_NAMES, RELATIONS, ComposedShapesDataset
from ditkit.evaluation.attributes import load_attribute_classifier, read_scenes
from ditkit.imaging import from_uint8
from ditkit.pipelines import generate, load_codec, load_for_sampling
from ditkit.pipelines.text import load_text_codec


def layout_of(scene, seen) -> str:
    a, b = scene.objects
    found_a = [o for o in seen if (o.colour, o.shape) == (a.colour, a.shape)]
    found_b = [o for o in seen if (o.colour, o.shape) == (b.colour, b.shape)]
    if len(seen) != 2 or not found_a or not found_b or found_a[0].cell == found_b[0].cell:
        return "unreadable"
    (ra, ca), (rb, cb) = divmod(found_a[0].cell, 3), divmod(found_b[0].cell, 3)
    if ra == rb:
        return "A left" if ca < cb else "A right"
    if ca == cb:
        return "A above" if ra < rb else "A below"
    return "diagonal"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default="shapes-t2i")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--cfg-scale", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    loaded = load_for_sampling(args.checkpoint)
    text_codec = load_text_codec(loaded.text_encoder_config, loaded.model)
    codec = load_codec(loaded, None)
    data = ComposedShapesDataset(32, "test", length=2000)
    scenes = [s for s in map(data.scene, range(len(data))) if s.relation][:args.pairs]

    def recolour(obj):  # three colours along the list: always a different colour
        return f"{obj.size} {COLOUR_NAMES[(COLOUR_NAMES.index(obj.colour) + 3) % len(COLOUR_NAMES)]} {obj.shape}"

    prompt_sets = {r: [f"a {s.objects[0].phrase()} {r} a {s.objects[1].phrase()}" for s in scenes] for r in RELATIONS}
    prompt_sets["A recoloured"] = [f"a {recolour(s.objects[0])} left of a {s.objects[1].phrase()}" for s in scenes]
    images = {name: from_uint8(generate(loaded.model, prompts=prompts, cfg_scale=args.cfg_scale, sampler="dpm++",
                                        steps=20, seed=args.seed, codec=codec, text_codec=text_codec,
                                        diffusion_config=loaded.diffusion_config, progress=False).images)
              for name, prompts in prompt_sets.items()}
    classifier = load_attribute_classifier()
    layout = {r: collections.Counter(layout_of(s, seen) for s, seen in zip(scenes, read_scenes(classifier, images[r])))
              for r in RELATIONS}
    change = {name: round((images["left of"] - images[name]).abs().mean().item(), 4)
              for name in ("right of", "above", "A recoloured")}
    print(json.dumps({"checkpoint": loaded.checkpoint, "pairs": len(scenes), "cfg_scale": args.cfg_scale,
                      "seed": args.seed, "layout": {r: dict(sorted(c.items())) for r, c in layout.items()},
                      "mean_abs_change_from_left_of": change}, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
