"""Train the small classifier shipped for a bundled dataset (an offline FID extractor).

    python -m ditkit.evaluation.train_classifier --data mnist
    python -m ditkit.evaluation.train_classifier --data shapes --epochs 4

Trains on the dataset's train split at 32 px on one CPU thread (a couple of minutes), reports
accuracy on the held-out test split, and writes ``<name>.safetensors`` + ``<name>.json`` (config,
accuracy, seed, the exact command, ditkit version) into the package's ``assets/classifiers``.
Same seed → same weights.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from ..fileio import atomic_path, atomic_write_json
from ..version import __version__
from .classifier import SmallClassifier, _asset_dir
from .sources import dataset_images


def _to_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (edge pixels repeated): cheap augmentation
    that makes the features robust to the small misplacements generated samples have."""
    n, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


@torch.no_grad()
def accuracy(model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])["logits"]
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    return correct / len(images)


def train(data: str, *, epochs: int, batch_size: int, lr: float, seed: int, width: int, feature_dim: int,
          image_size: int = 32, flips: bool = False) -> tuple[SmallClassifier, dict]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_set = dataset_images(data, "train", image_size)
    test_set = dataset_images(data, "test", image_size)
    x_train, y_train = _to_float(train_set.images), torch.from_numpy(train_set.labels)
    x_test, y_test = _to_float(test_set.images), torch.from_numpy(test_set.labels)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    model = SmallClassifier(x_train.shape[1], num_classes, width=width, feature_dim=feature_dim, image_size=image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x_train) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    bar = tqdm(total=steps, desc=f"classifier:{data}", leave=False)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x = _random_shift(x_train[idx], 2, generator)
            if flips:
                flip = torch.rand(len(x), generator=generator) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x)["logits"], y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
    bar.close()
    meta = {
        "dataset": data,
        "image_size": image_size,
        "model": model.config,
        "train_images": len(x_train),
        "test_images": len(x_test),
        "train_accuracy": accuracy(model, x_train, y_train),
        "test_accuracy": accuracy(model, x_test, y_test),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "flips": flips,
        "ditkit_version": __version__,
    }
    return model.eval(), meta


def save_classifier(model: SmallClassifier, meta: dict, out_dir: str, name: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, name)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(base + ".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "ditkit-classifier"})
        os.chmod(tmp, 0o644)  # shipped in the package: readable by everyone
    atomic_write_json(base + ".json", meta)
    return base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ditkit.evaluation.train_classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, choices=["mnist", "shapes"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv stage")
    parser.add_argument("--feature-dim", type=int, default=128, help="penultimate (FID feature) size")
    parser.add_argument("--flips", action="store_true", help="random horizontal flips (not for digits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: be kind to shared machines)")
    parser.add_argument("--out-dir", default=None, help="default: the package's assets/classifiers")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    model, meta = train(args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                        width=args.width, feature_dim=args.feature_dim, flips=args.flips)
    meta["train_seconds"] = round(time.time() - started, 1)
    meta["threads"] = args.threads
    meta["command"] = "python -m ditkit.evaluation.train_classifier " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    base = save_classifier(model, meta, args.out_dir or str(_asset_dir()), args.data)
    print(f"classifier:{args.data}: test accuracy {meta['test_accuracy']:.4f} on {meta['test_images']} held-out "
          f"images (train {meta['train_accuracy']:.4f}), {meta['train_seconds']} s -> {base}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
