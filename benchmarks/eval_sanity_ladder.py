"""FID sanity ladder for the offline extractors: real held-out images vs blurred vs pure noise.

    python benchmarks/eval_sanity_ladder.py [--datasets mnist shapes] [--out ladder.json]

For each bundled dataset, the test split is scored against reference statistics of the disjoint
train split (the *floor* FID: what a perfect model would get with this many samples), then the same
images blurred (Gaussian, radius 1.5 px) and uniform-noise images of the same shape. A working
metric orders them floor < blur < noise, with noise far above the floor. Also prints the shipped
classifier's held-out accuracy (= class accuracy of the real test images).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageFilter

from ditkit.evaluation import ImageSet, evaluate, open_images
from ditkit.version import __version__


def blurred(images: np.ndarray, radius: float = 1.5) -> np.ndarray:
    out = []
    for im in images:
        pil = Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
        arr = np.asarray(pil.filter(ImageFilter.GaussianBlur(radius)))
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    return np.stack(out)


def ladder(dataset: str) -> dict:
    held_out = open_images(f"{dataset}:test")
    noise = np.random.default_rng(0).integers(0, 256, held_out.images.shape, dtype=np.uint8)
    rungs = {
        "floor (real held-out)": ImageSet(held_out.images, held_out.labels, f"{dataset}:test"),
        "blurred (r=1.5)": ImageSet(blurred(held_out.images), held_out.labels, f"{dataset}:test blurred"),
        "uniform noise": ImageSet(noise, None, "uniform noise"),
    }
    results = {name: evaluate(images, dataset, progress=False) for name, images in rungs.items()}
    first = next(iter(results.values()))
    return {
        "extractor": first["extractor"],
        "reference": first["reference"]["description"],
        "samples": len(held_out),
        "rungs": {name: r["metrics"] for name, r in results.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "shapes"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the numbers as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"ditkit_version": __version__, "command": " ".join(["python", *sys.argv]), "datasets": {}}
    for dataset in args.datasets:
        result = ladder(dataset)
        report["datasets"][dataset] = result
        print(f"{dataset}: extractor {result['extractor']}, {result['samples']} samples vs {result['reference']}")
        for name, m in result["rungs"].items():
            extra = f"  class accuracy {m['class_accuracy']:.4f}" if "class_accuracy" in m else ""
            print(f"  {name:<22} FID {m['fid']:9.3f}  precision {m['precision']:.3f}  recall {m['recall']:.3f}{extra}")
    if args.out:
        tmp = f"{args.out}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
