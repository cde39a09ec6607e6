"""Parity with golden outputs of the official DiT code (tests/fixtures/reference-dit)."""

import pytest
import torch

from ditkit.diffusion import cfg_denoiser, create_diffusion, ddim_sample
from ditkit.models import create_model


def close(actual, expected, rel=1e-4):
    """|a - e| <= rel * scale(e), scale = max |e| (docs/dit.md: 'within 1e-4 of scale')."""
    scale = expected.abs().max().clamp(min=1e-12)
    err = (actual - expected).abs().max()
    assert err <= rel * scale, f"max abs error {err:.3e} > {rel:g} * scale {scale:.3e}"


@pytest.fixture(scope="module")
def expected(fixtures_dir):
    return torch.load(fixtures_dir / "tiny_dit_expected.pt", weights_only=True)


@pytest.fixture(scope="module")
def model(fixtures_dir, expected):
    m = create_model(expected["config"])
    m.load_state_dict(torch.load(fixtures_dir / "tiny_dit_state_dict.pt", weights_only=True))
    return m.eval()


@torch.no_grad()
def test_forward_matches_reference(model, expected):
    f = expected["forward"]
    out = model(f["x"], f["t"], f["y"])
    assert out.shape == f["out"].shape == (4, 8, 8, 8)
    assert (out - f["out"]).abs().max() < 1e-5


@torch.no_grad()
def test_forward_with_cfg_three_channel_form(model, expected):
    f = expected["forward_with_cfg"]
    n = f["x"].shape[0] // 2
    # the reference runs the batch [x0, x1, x0, x1] with labels [y0, y1, null, null]
    den = cfg_denoiser(model, f["y"][:n], f["cfg_scale"], guided_channels=f["guided_channels"])
    t = torch.as_tensor(f["t"]).expand(n) if torch.as_tensor(f["t"]).ndim == 0 else f["t"][:n]
    out = den(f["x"][:n], t)
    assert (out - f["out"][:n]).abs().max() < 1e-5


@torch.no_grad()
def test_standard_cfg_guides_all_eps_channels(model, expected):
    f = expected["forward_with_cfg"]
    x, y = f["x"][:2], f["y"][:2]
    t = torch.full((2,), 250)
    s = 4.0
    cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, 10))
    out = cfg_denoiser(model, y, s)(x, t)
    assert torch.allclose(out[:, :4], uncond[:, :4] + s * (cond[:, :4] - uncond[:, :4]), atol=1e-5)
    assert torch.allclose(out[:, 4:], cond[:, 4:], atol=1e-6)
    # and differs from the 3-channel form exactly in channel 3
    three = cfg_denoiser(model, y, s, guided_channels=3)(x, t)
    assert torch.allclose(three[:, :3], out[:, :3], atol=1e-6)
    assert not torch.allclose(three[:, 3], out[:, 3], atol=1e-3)


@torch.no_grad()
def test_training_loss_terms(model, expected):
    f = expected["training_losses"]
    diffusion = create_diffusion("")
    terms = diffusion.training_losses(lambda x, t: model(x, t, f["y"]), f["x_start"], f["t"], noise=f["noise"])
    for key in ("mse", "vb", "loss"):
        close(terms[key], f[key])


@torch.no_grad()
def test_p_mean_variance_respaced_250(model, expected):
    f = expected["p_mean_variance_250"]
    diffusion = create_diffusion("250")
    assert torch.equal(diffusion.timestep_map, f["timestep_map"].long())
    x = f["x_t"]
    for index, ref in f["by_index"].items():
        t = torch.full((x.shape[0],), int(index), dtype=torch.long)
        output = model(x, diffusion.original_timesteps(t), f["y"])
        out = diffusion.p_mean_variance(output, x, t, clip_denoised=False)
        for key in ("mean", "variance", "log_variance", "pred_xstart"):
            close(out[key], ref[key].detach())


@torch.no_grad()
def test_ddim10_unguided(model, expected):
    f = expected["ddim10"]
    diffusion = create_diffusion("ddim10")
    out = ddim_sample(cfg_denoiser(model, f["y"], 1.0), diffusion, f["z"], eta=0.0)
    close(out, f["out"])


@torch.no_grad()
def test_ddim10_guided_reference_form(model, expected):
    f = expected["ddim10_cfg"]
    n = f["z"].shape[0] // 2
    diffusion = create_diffusion("ddim10")
    assert torch.equal(diffusion.timestep_map, f["timestep_map"].long())
    den = cfg_denoiser(model, f["y"][:n], f["cfg_scale"], guided_channels=3)
    out = ddim_sample(den, diffusion, f["z"][:n], eta=0.0)
    close(out, f["out"][:n])
