"""The sampling pipeline as a library: ditkit.pipelines.generate and its output helpers."""

import numpy as np
import pytest
import torch

from ditkit.codecs import make_codec
from ditkit.errors import DitkitError
from ditkit.models import DiTConfig, create_model
from ditkit.pipelines import SamplingSettings, generate, make_grid, sample_seed, write_npz


def tiny_model(num_classes=10, in_channels=3, seed=0):
    torch.manual_seed(seed)
    model = create_model(DiTConfig(input_size=8, patch_size=2, in_channels=in_channels, hidden_size=32, depth=2,
                                   num_heads=2, num_classes=num_classes))
    # adaLN-Zero starts as the identity with a zero output layer; perturb so labels and steps matter.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def pixels():
    return make_codec("pixel")


def run(model, codec, **kwargs):
    kwargs.setdefault("steps", 4)
    kwargs.setdefault("progress", False)
    return generate(model, codec=codec, **kwargs)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "heun"])
def test_same_seed_same_images_and_seed_matters(model, pixels, sampler):
    a = run(model, pixels, num_samples=5, sampler=sampler, seed=3)
    b = run(model, pixels, num_samples=5, sampler=sampler, seed=3)
    c = run(model, pixels, num_samples=5, sampler=sampler, seed=4)
    assert a.images.dtype == np.uint8 and a.images.shape == (5, 8, 8, 3)
    assert a.latents.shape == (5, 3, 8, 8)
    assert np.array_equal(a.images, b.images) and torch.equal(a.latents, b.latents)
    assert not torch.allclose(a.latents, c.latents)
    # every sample has its own noise: no two are alike
    flat = a.latents.flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(5) * 1e9).min() > 1e-3


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_sample_depends_on_seed_and_index_not_on_batching(model, pixels, sampler):
    full = run(model, pixels, num_samples=7, sampler=sampler, batch_size=3, cfg_scale=2.0)
    # a different subset and order (what ranks and resumed runs do): the same samples. Bit-identical with one
    # thread; with several, a row's position in the batch can move the last bits (measured: ~5e-8 of scale).
    part = run(model, pixels, num_samples=7, sampler=sampler, batch_size=3, cfg_scale=2.0, sample_indices=[5, 2, 4])
    assert part.indices == [5, 2, 4] and part.labels == [5, 2, 4]
    scale = full.latents.abs().max().item()
    torch.testing.assert_close(part.latents, full.latents[[5, 2, 4]], rtol=0, atol=1e-6 * scale)
    assert np.abs(part.images.astype(int) - full.images[[5, 2, 4]].astype(int)).max() <= 1
    if torch.get_num_threads() == 1:
        assert torch.equal(part.latents, full.latents[[5, 2, 4]])
    # another batch size: equal up to float rounding of differently shaped kernels
    other = run(model, pixels, num_samples=7, sampler=sampler, batch_size=5, cfg_scale=2.0)
    torch.testing.assert_close(other.latents, full.latents, rtol=1e-4, atol=1e-4 * full.latents.abs().max().item())
    assert np.abs(other.images.astype(int) - full.images.astype(int)).max() <= 1


def test_sample_seeds_are_distinct_per_seed_and_index():
    seeds = {sample_seed(s, i) for s in range(4) for i in range(100)}
    assert len(seeds) == 400


def test_labels_spread_evenly_and_cycle(model, pixels):
    assert run(model, pixels, num_samples=23, steps=1, sampler="ddim", sample_indices=[0, 9, 10, 22]).labels == [0, 9, 0, 2]
    assert run(model, pixels, labels=[4, 7], num_samples=5, steps=1, sampler="ddim").labels == [4, 7, 4, 7, 4]
    assert run(model, pixels, labels=[1, 1, 3], steps=1, sampler="ddim").labels == [1, 1, 3]


def test_the_class_label_reaches_the_model(model, pixels):
    a = run(model, pixels, labels=[3], sampler="ddim")
    b = run(model, pixels, labels=[5], sampler="ddim")  # same seed, same index 0, same noise
    assert not torch.allclose(a.latents, b.latents)


def test_guidance_uses_one_batched_forward_per_step(model, pixels):
    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        guided = run(model, pixels, labels=[1, 2, 3], sampler="ddim", steps=4, cfg_scale=4.0, batch_size=3)
        assert calls == [6] * 4  # conditional and null halves together, once per step
        calls.clear()
        plain = run(model, pixels, labels=[1, 2, 3], sampler="ddim", steps=4, cfg_scale=1.0, batch_size=3)
        assert calls == [3] * 4
    finally:
        handle.remove()
    assert not torch.allclose(guided.latents, plain.latents)
    partial = run(model, pixels, labels=[1, 2, 3], sampler="ddim", steps=4, cfg_scale=4.0, guided_channels=1)
    assert not torch.allclose(partial.latents, guided.latents)


def test_unconditional_model(pixels):
    model = tiny_model(num_classes=0)
    out = run(model, pixels, num_samples=3, sampler="dpm++")
    assert out.labels is None and out.images.shape == (3, 8, 8, 3)
    with pytest.raises(DitkitError, match="unconditional"):
        run(model, pixels, labels=[0])
    with pytest.raises(DitkitError, match="class-conditional"):
        run(model, pixels, num_samples=2, cfg_scale=2.0)


def test_latents_only_without_codec(model):
    out = generate(model, codec=None, num_samples=2, steps=2, progress=False)
    assert out.images is None and out.latents.shape == (2, 3, 8, 8)


def test_grayscale_codec_gives_one_channel_images():
    model = tiny_model(in_channels=1)
    out = generate(model, codec=make_codec("pixel", image_channels=1), num_samples=2, steps=2, progress=False)
    assert out.images.shape == (2, 8, 8, 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(labels=[10]), "out of range"),
    (dict(labels=[-1]), "out of range"),
    (dict(labels=[]), "empty"),
    (dict(num_samples=0), "at least 1"),
    (dict(num_samples=2, cfg_scale=float("nan")), "finite"),
    (dict(num_samples=2, cfg_scale=float("inf")), "finite"),
    (dict(num_samples=2, sampler="ddim", options={"eta": float("nan")}), "finite"),
    (dict(num_samples=2, sampler="dpm++", options={"eta": 0.5}), "no option 'eta'"),
    (dict(num_samples=2, colour="red"), "unknown sampling setting 'colour'"),
    (dict(num_samples=2, steps=0), "steps"),
    (dict(num_samples=2, steps=1001), "steps"),
    (dict(num_samples=2, sampler="eulerr"), "unknown sampler"),
    (dict(num_samples=2, guided_channels=4), "guided channels"),
    (dict(num_samples=2, cfg_scale=-1.0), "guidance scale"),
    (dict(num_samples=2, seed=-1), "seed"),
    (dict(num_samples=2, batch_size=0), "batch size"),
    (dict(num_samples=2, sample_indices=[2]), "outside"),
])
def test_bad_input_is_a_ditkit_error(model, pixels, kwargs, message):
    with pytest.raises(DitkitError, match=message):
        run(model, pixels, **kwargs)


def test_codec_must_match_the_model(model):
    with pytest.raises(DitkitError, match="channels"):
        generate(model, codec=make_codec("pixel", image_channels=1), num_samples=1, steps=1, progress=False)


def test_npz_is_adm_format_and_grayscale_becomes_rgb(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 1), dtype=np.uint8)
    write_npz(tmp_path / "s.npz", images, [0, 1, 0, 1])
    with np.load(tmp_path / "s.npz") as data:
        assert data["arr_0"].dtype == np.uint8 and data["arr_0"].shape == (4, 6, 6, 3)
        assert all(np.array_equal(data["arr_0"][..., c], images[..., 0]) for c in range(3))
        assert data["labels"].tolist() == [0, 1, 0, 1]
    write_npz(tmp_path / "u.npz", images[..., [0, 0, 0]], None)
    with np.load(tmp_path / "u.npz") as data:
        assert set(data.files) == {"arr_0"}
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_grid_has_one_row_per_class_when_classes_repeat():
    images = np.stack([np.full((2, 2, 1), 10 * i, np.uint8) for i in range(6)])
    grid = make_grid(images, [0, 1, 2, 0, 1, 2], padding=1)
    assert grid.shape == (1 + 3 * 3, 1 + 2 * 3, 1)  # 3 class rows, 2 samples each
    assert grid[1, 1, 0] == 0 and grid[1, 4, 0] == 30  # row 0 = class 0: samples 0 and 3
    assert grid[4, 4, 0] == 40  # row 1 = class 1: samples 1 and 4
    square = make_grid(images, [0, 1, 2, 3, 4, 5], padding=1)
    assert square.shape == (1 + 2 * 3, 1 + 3 * 3, 1)  # distinct labels: a near-square grid


def test_samples_in_eval_mode_and_restores_training_mode(pixels):
    model = tiny_model()
    expected = run(model.eval(), pixels, labels=[1, 2], sampler="ddim")
    model.train()  # e.g. the training engine's FID hook; label dropout must not touch sampling
    got = run(model, pixels, labels=[1, 2], sampler="ddim")
    assert model.training
    assert torch.equal(got.latents, expected.latents)


def test_a_small_request_is_not_padded_and_equals_the_start_of_a_large_one(model, pixels):
    """8 samples asked for alone = the first 8 of 32 (each depends on (seed, index) only), at 8/32 of the work."""
    rows = []
    handle = model.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    try:
        small = run(model, pixels, num_samples=8, sampler="ddpm", steps=5, cfg_scale=3.0)  # default batch_size 32
        small_rows, rows[:] = list(rows), []
        large = run(model, pixels, num_samples=32, sampler="ddpm", steps=5, cfg_scale=3.0)
    finally:
        handle.remove()
    assert small_rows == [16] * 5 and rows == [64] * 5  # batched guidance: 2 rows a sample, per step
    assert sum(small_rows) * 4 == sum(rows)  # work proportional to the request
    # measured bit-identical on CPU; other kernels may round differently with the batch shape
    torch.testing.assert_close(small.latents, large.latents[:8], rtol=1e-5, atol=1e-5)
    assert np.abs(small.images.astype(int) - large.images[:8].astype(int)).max() <= 1


def test_one_settings_object_and_the_default_steps_come_from_the_registry(model, pixels):
    from ditkit.diffusion import SAMPLERS

    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(1))
    try:
        settings = SamplingSettings(labels=(1, 2), sampler="dpm++", cfg_scale=2.0, seed=4)
        a = generate(model, settings, codec=pixels, progress=False)
    finally:
        handle.remove()
    assert settings.resolved_steps == SAMPLERS["dpm++"].default_steps == len(calls)
    b = generate(model, codec=pixels, progress=False, labels=[1, 2], sampler="dpm++", cfg_scale=2.0, seed=4)
    assert torch.equal(a.latents, b.latents)  # keywords are the same settings
    c = generate(model, settings, codec=pixels, progress=False, seed=5)  # keywords override the object
    assert not torch.allclose(a.latents, c.latents)


def test_sampler_options_reach_the_sampler(model, pixels):
    plain = run(model, pixels, labels=[1, 2], sampler="ddim")
    noisy = run(model, pixels, labels=[1, 2], sampler="ddim", options={"eta": 1.0})
    again = run(model, pixels, labels=[1, 2], sampler="ddim", options={"eta": 1.0})
    clipped = run(model, pixels, labels=[1, 2], sampler="ddim", options={"clip_denoised": True})
    assert not torch.allclose(plain.latents, noisy.latents) and torch.equal(noisy.latents, again.latents)
    assert not torch.allclose(plain.latents, clipped.latents)


def test_no_labels_and_no_count_draws_one_sample_per_class(model, pixels):
    out = run(model, pixels, sampler="ddim", steps=2)
    assert out.labels == list(range(10)) and len(out) == 10


def test_sampling_runs_in_inference_mode_and_returns_ordinary_tensors(model, pixels):
    modes = []
    handle = model.register_forward_hook(lambda m, args, out: modes.append(torch.is_inference_mode_enabled()))
    try:
        out = run(model, pixels, labels=[1], sampler="ddim", steps=2)
    finally:
        handle.remove()
    assert modes == [True, True]
    assert not out.latents.is_inference()
    out.latents.mul_(2)  # an inference tensor would refuse an in-place update outside inference mode


def test_bf16_sampling_runs_the_network_in_bf16_and_stays_close_to_fp32():
    """``precision="bf16"``: the network under bf16 autocast, its output back in fp32 for guidance and the
    sampler. The bundled model's samples stay close to the fp32 ones (same noise, 20 DPM-Solver++ steps)."""
    from ditkit.pipelines import load_for_sampling

    loaded = load_for_sampling("mnist-dit")
    seen = []
    loaded.model.final_layer.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    run = dict(labels=list(range(10)), sampler="dpm++", steps=20, cfg_scale=4, seed=5, progress=False,
               diffusion_config=loaded.diffusion_config)
    full = generate(loaded.model, **run).latents
    assert seen and set(seen) == {torch.float32}
    seen.clear()
    half = generate(loaded.model, precision="bf16", **run).latents
    assert seen and set(seen) == {torch.bfloat16} and half.dtype == torch.float32
    assert torch.equal(half, generate(loaded.model, precision="bf16", **run).latents)  # deterministic
    error = (half - full).abs()
    # bf16 moves a trajectory a little (0.7% of the scale on average here); a rare stroke-edge pixel further
    assert 0 < error.mean() < 0.02 * full.abs().mean() and (error > 0.2).float().mean() < 0.01, error.mean()
    with pytest.raises(DitkitError, match="unknown sampling precision"):
        generate(loaded.model, precision="fp8", **run)
