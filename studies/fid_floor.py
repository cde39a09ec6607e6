"""The FID floor of the miniature's measurement: real held-out digits scored exactly like the study's samples.

    OMP_NUM_THREADS=1 python studies/fid_floor.py        # ~1 min on CPU

200 MNIST test digits, 20 per class (the study samples 20 per class too), against the same train-split reference
with the same bundled classifier features; five random draws. Real digits set the scale the study's FIDs are read on.
"""

import warnings

import numpy as np

from ditkit.evaluation import feature_statistics, frechet_distance, make_extractor, reference_statistics
from ditkit.evaluation.sources import dataset_images

PER_CLASS, DRAWS = 20, 5


def main() -> None:
    extractor = make_extractor("auto", "mnist", None)
    reference = reference_statistics("mnist", extractor, 32)
    images = dataset_images("mnist", "test", 32)
    features = extractor(images, 256, progress=False)["pool"]
    labels = np.asarray(images.labels)
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(DRAWS):
        pick = np.concatenate([rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False) for c in range(10)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few samples: the estimate is biased upward, as for the study
            mu, sigma = feature_statistics(features[pick])
        scores.append(frechet_distance(mu, sigma, reference.mu, reference.sigma))
    print(f"FID of {PER_CLASS * 10} real test digits ({PER_CLASS} per class) vs the train reference, "
          f"{extractor.name}: " + ", ".join(f"{s:.1f}" for s in scores))


if __name__ == "__main__":
    main()
