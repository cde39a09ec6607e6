"""Train the bundled shapes attribute classifier: ``python -m ditkit.evaluation.train_attributes``.

Training images: the captioned shapes' ``train`` split plus held-out-combination scenes from far past the
evaluation range of the ``heldout`` split (indices ≥ 100,000), so the classifier knows every colour–shape
pair while the text-to-image models never see the held-out ones. Evaluation: the first images of the
``test`` and ``heldout`` splits, read back as scenes and scored against their own captions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..data.captions import ComposedShapesDataset
from ..fileio import atomic_path, atomic_write_json
from ..imaging import from_uint8
from ..version import __version__
from .attributes import AttributeClassifier, read_scenes, scene_targets, score_scenes

HELDOUT_TRAIN_OFFSET = 100_000


def render_split(split: str, start: int, count: int, image_size: int = 32):
    """uint8 images (N, H, W, 3) and scenes of items ``start .. start + count`` of ``split``."""
    data = ComposedShapesDataset(image_size, split, length=start + count)
    images = np.stack([data.render(i) for i in range(start, start + count)])
    return images, [data.scene(i) for i in range(start, start + count)]


def evaluate(model: AttributeClassifier, count: int = 500) -> dict:
    """Scores of real test (seen) and held-out images against their own scenes."""
    model.eval()
    report = {}
    for split in ("test", "heldout"):
        images, scenes = render_split(split, 0, count)
        report[split] = score_scenes(read_scenes(model, from_uint8(images)), scenes)["all"]
    return report


def train_attribute_classifier(train_images: int = 8_000, heldout_images: int = 2_000, epochs: int = 6,
                               batch_size: int = 128, lr: float = 2e-3, seed: int = 0, log=print) -> AttributeClassifier:
    torch.manual_seed(seed)
    a, scenes_a = render_split("train", 0, train_images)
    b, scenes_b = render_split("heldout", HELDOUT_TRAIN_OFFSET, heldout_images)
    images = torch.from_numpy(np.concatenate([a, b]))  # uint8 (N, H, W, 3): 4x smaller than floats
    targets = scene_targets(scenes_a + scenes_b)
    model = AttributeClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            logits = model(from_uint8(images[idx].numpy()))
            loss = sum(F.cross_entropy(logits[k].flatten(0, 1), targets[k][idx].flatten(), ignore_index=-100)
                       for k in logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    return model.eval()


def save_classifier(model: AttributeClassifier, out: str, meta: dict) -> None:
    """``out``.safetensors (float16: the bundle stays under 2 MB) and ``out``.json."""
    state = {k: v.detach().half().contiguous() if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items()}
    with atomic_path(out + ".safetensors", suffix=".safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_json(out + ".json", dict(meta, model=model.config, ditkit_version=__version__))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-images", type=int, default=8_000)
    p.add_argument("--heldout-images", type=int, default=2_000)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "assets", "classifiers",
                                                 "shapes-attributes"), help="path without extension")
    args = p.parse_args(argv)
    began = time.time()
    model = train_attribute_classifier(args.train_images, args.heldout_images, args.epochs, seed=args.seed)
    seconds = time.time() - began
    report = evaluate(model)
    print(report)
    save_classifier(model, os.path.normpath(args.out), {
        "train_images": args.train_images, "heldout_train_images": args.heldout_images, "epochs": args.epochs,
        "seed": args.seed, "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
        "evaluation_500": report, "command": "python -m ditkit.evaluation.train_attributes " + " ".join(sys.argv[1:])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
