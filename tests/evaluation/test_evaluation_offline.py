"""Offline evaluation with the shipped classifiers on real bundled data: accuracy, the FID sanity
ladder (real held-out digits ≪ blurred ≪ noise), FID monotone in added noise, the training hook."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from ditkit.evaluation import ImageSet, evaluate, load_classifier, make_training_eval_fn, open_images


@pytest.fixture(scope="module", autouse=True)
def _shared_cache(tmp_path_factory):
    # One private statistics cache for the module: the mnist reference is computed once, then reused.
    with pytest.MonkeyPatch.context() as mp:
        # One path for all evaluation test modules of a session: reference statistics are computed once.
        mp.setenv("DITKIT_CACHE", str(tmp_path_factory.getbasetemp() / "ditkit_eval_cache"))
        yield


@pytest.fixture(scope="module")
def held_out_digits():
    return open_images("mnist:test")


def _score(pixels, labels=None, reference="mnist"):
    return evaluate(ImageSet(pixels, labels, "test images"), reference, progress=False)


@pytest.mark.parametrize("name, min_accuracy", [("mnist", 0.97), ("shapes", 0.97)])
def test_shipped_classifiers_are_accurate_on_held_out_data(name, min_accuracy):
    model, meta = load_classifier(name)
    held_out = open_images(f"{name}:test")  # never seen in training (train split only)
    assert len(held_out) == meta["test_images"]
    pixels = torch.from_numpy(held_out.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        predictions = model(pixels)["logits"].argmax(1).numpy()
    accuracy = float(np.mean(predictions == held_out.labels))
    assert accuracy >= min_accuracy
    assert accuracy == pytest.approx(meta["test_accuracy"], abs=1e-9)  # the recorded number is reproducible
    assert meta["command"].startswith("python -m ditkit.evaluation.train_classifier")


def test_sanity_ladder_real_digits_below_blurred_below_noise(held_out_digits):
    floor = _score(held_out_digits.images, held_out_digits.labels)
    assert floor["extractor"] == "classifier:mnist"
    assert floor["reference"]["description"].startswith("mnist:train")  # a split disjoint from the samples
    blurred = np.stack([np.asarray(Image.fromarray(im[..., 0]).filter(ImageFilter.GaussianBlur(1.5)))[..., None]
                        for im in held_out_digits.images])
    blur = _score(blurred, held_out_digits.labels)
    noise_pixels = np.random.default_rng(0).integers(0, 256, held_out_digits.images.shape, dtype=np.uint8)
    noise = _score(noise_pixels)
    fid_floor, fid_blur, fid_noise = (r["metrics"]["fid"] for r in (floor, blur, noise))
    assert 10 * fid_floor <= fid_noise
    assert fid_floor < fid_blur < fid_noise
    assert floor["metrics"]["class_accuracy"] >= 0.97
    assert floor["metrics"]["precision"] > 0.8 and floor["metrics"]["recall"] > 0.8
    assert noise["metrics"]["precision"] < 0.05


def test_fid_grows_monotonically_with_added_noise(held_out_digits):
    rng = np.random.default_rng(1)
    base = held_out_digits.images[:500].astype(np.float64)
    fids = []
    for sigma in (0.0, 16.0, 32.0, 64.0, 128.0):  # pixel units (0..255)
        noisy = np.clip(base + sigma * rng.normal(size=base.shape), 0, 255).round().astype(np.uint8)
        fids.append(_score(noisy)["metrics"]["fid"])
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


def test_grayscale_stored_as_three_channels_scores_like_one_channel(held_out_digits):
    one = _score(held_out_digits.images[:200])["metrics"]
    three = _score(np.repeat(held_out_digits.images[:200], 3, axis=3))["metrics"]  # ADM .npz layout
    assert three["fid"] == pytest.approx(one["fid"], rel=1e-6)


def test_training_hook_scores_ema_samples_deterministically():
    from ditkit.models import create_model

    torch.manual_seed(0)
    model = create_model("DiT-S/8", input_size=32, in_channels=1, num_classes=10, depth=1, hidden_size=32,
                         num_heads=2).eval()
    eval_fn = make_training_eval_fn("mnist", 20, image_size=32, sampler="ddim", steps=2, seed=3, batch_size=20)
    assert eval_fn.extractor == "classifier:mnist"
    first, second = eval_fn(model, 100), eval_fn(model, 200)
    assert set(first) == {"fid", "class_accuracy"}
    assert first == second  # same seed, same model → same numbers
    assert first["fid"] > 0 and 0.0 <= first["class_accuracy"] <= 1.0


def test_a_saved_classifier_loads_by_path_under_its_own_name(tmp_path, held_out_digits):
    from ditkit.evaluation.train_classifier import save_classifier

    model, meta = load_classifier("mnist")
    base = save_classifier(model, meta, str(tmp_path), "mine")
    images = ImageSet(held_out_digits.images[:200], held_out_digits.labels[:200], "digits")
    by_path = evaluate(images, "mnist", extractor=f"classifier:{base}.safetensors", progress=False)
    bundled = evaluate(images, "mnist", progress=False)
    assert by_path["extractor"] == f"classifier:{base}.safetensors" != bundled["extractor"]
    assert by_path["metrics"]["fid"] == pytest.approx(bundled["metrics"]["fid"], rel=1e-9)
