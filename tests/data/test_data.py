"""Datasets through the public ``ditkit.data`` API on small real inputs."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from ditkit.data import build_latent_cache, center_crop_arr, load_dataset
from ditkit.errors import DitkitError


def test_mnist_splits_range_and_padding():
    train, test = load_dataset("mnist", split="train"), load_dataset("mnist", split="test")
    assert (len(train), len(test), len(load_dataset("mnist", split="all"))) == (4000, 1000, 5000)
    x, y = train[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.max() > 0.9
    # 28×28 digits padded by 2: the border is background (-1).
    assert torch.all(x[:, :2] == -1) and torch.all(x[:, :, -2:] == -1)
    assert train.num_classes == 10 and train.class_names[3] == "3" and train.channels == 1
    assert np.bincount([train[i][1] for i in range(len(train))]).tolist() == [400] * 10
    assert train.flip is False  # digits are not mirrored by default
    assert load_dataset("mnist", image_size=16)[0][0].shape == (1, 16, 16)


def test_shapes_exact_and_resolution_independent():
    a = load_dataset("shapes", image_size=32)
    b = load_dataset("shapes", image_size=32)
    assert torch.equal(a[7][0], b[7][0]) and a[7][1] == 7 and a.class_names[7] == "cyan diamond"
    assert len(a) == 10_000 and len(load_dataset("shapes", split="test")) == 2_000
    assert not np.array_equal(a.render(0), load_dataset("shapes", split="test").render(0))
    # The same scene at two resolutions: the 64 px item box-filtered down matches the 32 px one closely.
    big = load_dataset("shapes", image_size=64).render(5).astype(float)
    small = a.render(5).astype(float)
    assert np.abs(big.reshape(32, 2, 32, 2, 3).mean((1, 3)) - small).mean() < 6
    # The shape's colour dominates the centre: red circle (class 0) is red.
    centre = a.render(0)[12:20, 12:20].reshape(-1, 3).mean(0)
    assert centre[0] > centre[1] + 60


def test_flips_deterministic_per_epoch():
    ds = load_dataset("shapes", image_size=16, flip=True)
    plain = torch.stack([torch.from_numpy(ds.render(i).transpose(2, 0, 1).copy()) for i in range(40)]).float() / 127.5 - 1
    got0 = torch.stack([ds[i][0] for i in range(40)])
    flipped = torch.tensor([not torch.equal(g, p) for g, p in zip(got0, plain)])
    assert 5 < flipped.sum() < 35  # about half are mirrored
    assert torch.equal(got0[flipped], plain[flipped].flip(-1))
    assert torch.equal(torch.stack([ds[i][0] for i in range(40)]), got0)  # same epoch → same flips
    ds.set_epoch(1)
    assert not torch.equal(torch.stack([ds[i][0] for i in range(40)]), got0)
    off = load_dataset("shapes", image_size=16, flip=False)
    assert torch.equal(torch.stack([off[i][0] for i in range(40)]), plain)


def test_center_crop_matches_adm_recipe():
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8))
    out = center_crop_arr(im, 64)
    assert out.size == (64, 64)
    # By hand: 300×500 → BOX halvings while the short side ≥ 128 (→ 150×250 → 75×125), then BICUBIC
    # to short side 64 (64×107), then the centre crop.
    step = im.resize((250, 150), Image.BOX).resize((125, 75), Image.BOX).resize((107, 64), Image.BICUBIC)
    left = (107 - 64) // 2
    assert np.array_equal(np.asarray(out), np.asarray(step)[:, left : left + 64])


def _save(path, seed, size=(40, 30), mode="RGB"):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path)


def test_image_folder_class_conditional_and_corrupt(tmp_path):
    for cls in ("dogs", "cats"):
        os.makedirs(tmp_path / cls)
        for k in range(3):
            _save(tmp_path / cls / f"{k}.png", hash((cls, k)) % 1000)
    (tmp_path / "cats" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "cats" / "notes.txt").write_text("ignored: not an image")
    _save(tmp_path / "dogs" / "grey.jpg", 9, mode="L")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load_dataset(str(tmp_path), image_size=16)
    assert ds.num_skipped == 1 and len(ds) == 7
    assert ds.class_names == ["cats", "dogs"] and ds.num_classes == 2 and ds.channels == 3
    labels = [ds[i][1] for i in range(len(ds))]
    assert labels == [0, 0, 0, 1, 1, 1, 1]
    x, _ = ds[6]  # the greyscale JPEG comes back as RGB
    assert x.shape == (3, 16, 16) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(DitkitError, match="unreadable"):
        load_dataset(str(tmp_path), image_size=16, strict=True)


def test_image_folder_flat_is_unconditional(tmp_path):
    for k in range(4):
        _save(tmp_path / f"{k}.jpg", k)
    ds = load_dataset(str(tmp_path), image_size=8)
    assert ds.num_classes == 0 and ds.class_names == [] and {ds[i][1] for i in range(4)} == {0}


def test_truncated_image_strict_and_lenient(tmp_path):
    _save(tmp_path / "a.jpg", 1, size=(64, 64))
    _save(tmp_path / "b.jpg", 2, size=(64, 64))
    data = (tmp_path / "b.jpg").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data[: len(data) // 3])  # header intact, data cut short
    lenient = load_dataset(str(tmp_path), image_size=16)
    with pytest.warns(UserWarning, match="cannot decode"):
        x, _ = lenient[1]
    assert x.shape == (3, 16, 16)
    strict = load_dataset(str(tmp_path), image_size=16, strict=True)
    with pytest.raises(DitkitError, match="cannot decode"):
        strict[1]


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "not found"),
    (lambda p: os.makedirs(p), "no images"),
    (lambda p: (os.makedirs(p), open(os.path.join(p, "x.txt"), "w").close()), "no images"),
])
def test_empty_or_missing_folder(tmp_path, setup, message):
    path = str(tmp_path / "data")
    setup(path)
    with pytest.raises(DitkitError, match=message):
        load_dataset(path, image_size=16)


class _HalfCodec:
    """A stand-in codec: 2× average-pool 'latents' plus seeded noise, like a VAE sample."""
    latent_channels, downsample = 3, 2

    def encode(self, images, generator=None):
        mean = torch.nn.functional.avg_pool2d(images, 2)
        return mean + 0.01 * torch.randn(mean.shape, generator=generator)

    def to_config(self):
        return {"type": "half"}


def test_latent_cache_roundtrip_with_flips(tmp_path):
    ds = load_dataset("shapes", image_size=16, length=20)
    out = build_latent_cache(ds, _HalfCodec(), str(tmp_path / "cache"), batch_size=8, seed=3, progress=False)
    assert ds.flip is True  # restored after encoding
    cache = load_dataset(out)
    assert len(cache) == 20 and cache.channels == 3 and cache.num_classes == 10 and cache.latent_size == 8
    assert json.load(open(os.path.join(out, "cache.json")))["codec"] == {"type": "half"}
    plain = load_dataset(out, flip=False)
    for i in range(20):
        lat, label = cache[i]
        ref, ref_label = plain[i]
        assert label == ref_label == i % 10
        expect = torch.nn.functional.avg_pool2d(ds.__class__(16, "train", 20, flip=False)[i][0][None], 2)[0]
        assert (ref - expect).abs().max() < 0.1
        if not torch.equal(lat, ref):  # the flipped choice is the stored mirror latent
            assert (lat - expect.flip(-1)).abs().max() < 0.1
    # Reproducible: the same seed gives the same cache.
    again = load_dataset(build_latent_cache(ds, _HalfCodec(), str(tmp_path / "c2"), batch_size=8, seed=3, progress=False), flip=False)
    assert all(torch.equal(again[i][0], plain[i][0]) for i in range(20))
