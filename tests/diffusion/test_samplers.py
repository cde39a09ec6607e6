"""Sampler math on a toy problem whose exact denoiser is closed-form: Gaussian data.

For x_0 ~ N(mu, s^2) (per dimension) and x_t = sqrt(a) x_0 + sqrt(1 - a) eps, the optimal
eps-prediction is E[eps | x_t] = sqrt(1 - a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a).
No network is involved: these test the samplers and the process.
"""

import numpy as np
import pytest
import torch

from ditkit.diffusion import (SAMPLERS, DiffusionConfig, create_diffusion, ddim_sample, ddpm_sample,
                              dpm_solver_pp_sample, run_sampler, sample, space_timesteps)
from ditkit.errors import DitkitError

FIXED = DiffusionConfig(learn_sigma=False)


def respacing_for(name, steps):
    return SAMPLERS[name].respacing(steps)

MU, STD = 0.7, 0.3


def exact_denoiser(learn_sigma=False):
    alpha_bar = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)))

    def denoise(x, t):
        a = alpha_bar[t].reshape(-1, 1, 1, 1).to(x.dtype)
        eps = torch.sqrt(1 - a) * (x - torch.sqrt(a) * MU) / (a * STD**2 + 1 - a)
        if learn_sigma:  # v = -1 picks the posterior variance beta~_t
            return torch.cat([eps, -torch.ones_like(eps)], dim=1)
        return eps

    return denoise


def noise(n=2000, seed=0):
    return torch.randn(n, 2, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_ddim_250_and_dpm_solver_20_solve_the_same_ode():
    z = noise(500)
    ddim = ddim_sample(exact_denoiser(), create_diffusion("250", learn_sigma=False), z, eta=0.0)
    dpm = dpm_solver_pp_sample(exact_denoiser(), create_diffusion(respacing_for("dpm++", 20), learn_sigma=False), z)
    dpm5 = dpm_solver_pp_sample(exact_denoiser(), create_diffusion(respacing_for("dpm++", 5), learn_sigma=False), z)
    err20 = (ddim - dpm).abs().max().item()
    err5 = (ddim - dpm5).abs().max().item()
    assert err20 < 0.05, err20  # worst of 4,000 values; DDIM-250 itself is ~0.017 off the exact solution
    assert (ddim - dpm).abs().mean() < 0.01
    assert err5 > 3 * err20  # fewer steps, larger discretisation error: the comparison can fail
    # both approach the exact solution of the ODE, which is affine for Gaussian data
    a_T = float(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[-1])
    exact = MU + STD * (z - a_T**0.5 * MU) / (a_T * STD**2 + 1 - a_T) ** 0.5
    assert (dpm - exact).abs().max() < 0.03
    assert (ddim - exact).abs().max() < 0.03
    # the ODE maps N(0, I) onto the data distribution
    assert abs(ddim.mean().item() - MU) < 0.02
    assert abs(ddim.std().item() - STD) < 0.02


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_ddpm_samples_match_data_mean_and_variance(learn_sigma):
    gen = torch.Generator().manual_seed(1)
    x = ddpm_sample(exact_denoiser(learn_sigma), create_diffusion(None, learn_sigma=learn_sigma), noise(4000),
                    generator=gen)
    assert abs(x.mean().item() - MU) < 0.01
    assert abs(x.std().item() / STD - 1) < 0.03


def test_ddim_eta_1_is_ddpm_with_the_posterior_variance():
    z = noise(500)
    diffusion = create_diffusion("100", learn_sigma=True)
    x = ddim_sample(exact_denoiser(True), diffusion, z, eta=1.0, generator=torch.Generator().manual_seed(2))
    y = ddpm_sample(exact_denoiser(True), diffusion, z, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(x, y, atol=1e-4)
    assert abs(x.mean().item() - MU) < 0.02


def test_ddpm_is_reproducible_with_a_seed_and_varies_without():
    diffusion = create_diffusion("20", learn_sigma=False)
    z = noise(8)
    a = ddpm_sample(exact_denoiser(), diffusion, z, generator=torch.Generator().manual_seed(3))
    b = ddpm_sample(exact_denoiser(), diffusion, z, generator=torch.Generator().manual_seed(3))
    c = ddpm_sample(exact_denoiser(), diffusion, z, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_by_name_counts_network_evaluations():
    calls = []
    den = exact_denoiser()

    def counting(x, t):
        calls.append(int(t[0]))
        return den(x, t)

    sample(counting, noise(4), sampler="dpm++", steps=20, config=FIXED)
    assert len(calls) == 20 and calls[0] == 999 and calls[-1] == 0 and len(set(calls)) == 20
    calls.clear()
    sample(counting, noise(4), sampler="ddim", steps=10, config=FIXED)
    assert calls == list(range(900, -1, -100))
    calls.clear()
    sample(counting, noise(4), sampler="ddpm", config=FIXED)  # the registry's default step count
    assert len(calls) == SAMPLERS["ddpm"].default_steps == 250


def test_respacing():
    assert space_timesteps(1000, "ddim10") == list(range(0, 1000, 100))
    steps = space_timesteps(1000, "250")
    assert len(steps) == 250 and steps[0] == 0 and steps[-1] == 999
    assert space_timesteps(1000, None) == list(range(1000))
    assert respacing_for("ddim", 50) == "ddim50"
    with pytest.raises(DitkitError):
        space_timesteps(1000, "2000")
    with pytest.raises(DitkitError):
        respacing_for("ddpm", 0)
    # a respaced process keeps alpha_bar at the kept steps
    full, spaced = create_diffusion(None), create_diffusion("ddim10")
    assert np.allclose(spaced.alphas_cumprod, full.alphas_cumprod[::100])


def test_unknown_sampler_options_are_an_error():
    process = create_diffusion("ddim5", learn_sigma=False)
    with pytest.raises(DitkitError, match="dpm\\+\\+ sampler has no option 'eta'"):
        run_sampler("dpm++", exact_denoiser(), process, noise(2), eta=0.5)
    with pytest.raises(DitkitError, match="no option 'etta'"):
        sample(exact_denoiser(), noise(2), sampler="ddim", steps=5, config=FIXED, etta=0.5)
    with pytest.raises(DitkitError, match="unknown sampler 'eulerr'"):
        run_sampler("eulerr", exact_denoiser(), process, noise(2))
    with pytest.raises(DitkitError, match="the euler sampler does not run on a ddpm model"):
        run_sampler("euler", exact_denoiser(), process, noise(2))
    out = run_sampler("ddim", exact_denoiser(), process, noise(2), eta=0.0, clip_denoised=True)
    assert out.shape == (2, 2, 2, 2)


def test_every_sampler_has_the_common_signature_and_defaults_in_the_registry():
    import inspect

    for name, spec in SAMPLERS.items():
        for family in ("ddpm", "flow", "vp"):  # each process's form of the sampler, where it has one
            if spec.target_for(family) is None:
                continue
            params = inspect.signature(spec.function_for(family)).parameters
            assert list(params)[:3] == ["denoiser", "process", "x_T"], name
            keywords = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
            assert keywords == {"generator", "noise_sampler", "callback", *spec.options}, (name, family)
            assert not any(v.kind is inspect.Parameter.VAR_KEYWORD for v in params.values()), name
            assert 1 <= spec.steps_for(family) <= 1000


def test_samplers_read_the_process_only_through_public_accessors():
    from pathlib import Path

    import ditkit.diffusion as package

    for path in Path(package.__file__).parent.glob("*.py"):
        if path.name != "gaussian.py":
            assert "._gather" not in path.read_text() and "._f64" not in path.read_text(), path.name


def test_process_accessors():
    process = create_diffusion("ddim10")
    ac = process.alphas_cumprod
    t = torch.tensor([0, 3, 9])
    like = torch.zeros(3, 2, 4, 4)
    assert process.alpha_bar_at(t, like).shape == (3, 1, 1, 1)
    assert torch.allclose(process.alpha_bar_at(t, like).flatten().double(), torch.from_numpy(ac[[0, 3, 9]]))
    assert torch.allclose(process.alpha_bar_prev_at(t, like).flatten().double(),
                          torch.tensor([1.0, ac[2], ac[8]], dtype=torch.float64))
    alpha, sigma = process.alpha_sigma(4)
    assert abs(alpha**2 + sigma**2 - 1) < 1e-12 and abs(alpha**2 - ac[4]) < 1e-12
    assert abs(process.half_log_snr(4) - 0.5 * np.log(ac[4] / (1 - ac[4]))) < 1e-9
    assert abs(process.edm_sigma(4) - sigma / alpha) < 1e-12
    assert process.eps(torch.ones(3, 4, 4, 4), like).shape == like.shape  # learned-sigma channels dropped


def test_one_respacing_parser():
    full = create_diffusion(None)
    log = space_timesteps(1000, "logsnr8", alphas_cumprod=full.alphas_cumprod)
    assert create_diffusion("logsnr8").timestep_map.tolist() == log and log[0] == 0 and log[-1] == 999
    assert SAMPLERS["dpm++"].respacing(8) == "logsnr8" and SAMPLERS["ddim"].respacing(7) == "ddim7"
    assert SAMPLERS["ddim"].respacing(999) == "999"  # no integer stride gives 999 steps: evenly strided
    with pytest.raises(DitkitError, match="needs the noise schedule"):
        space_timesteps(1000, "logsnr8")
    with pytest.raises(DitkitError, match="bad respacing"):
        create_diffusion("logsnrX")


def test_heun_is_a_second_order_solver_of_the_same_ode():
    z = noise(500)
    a_T = float(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[-1])
    exact = MU + STD * (z - a_T**0.5 * MU) / (a_T * STD**2 + 1 - a_T) ** 0.5
    calls = []

    def counting(x, t):
        calls.append(int(t[0]))
        return exact_denoiser()(x, t)

    def error(name, steps):
        calls.clear()
        return (sample(counting, z, sampler=name, steps=steps, config=FIXED) - exact).abs().max().item()

    heun20, heun40 = error("heun", 20), error("heun", 40)
    assert len(calls) == 2 * 40 - 1  # two evaluations a step, Euler into sigma = 0 at the end
    ddim20, ddim40 = error("ddim", 20), error("ddim", 40)
    assert heun40 < 0.015, heun40  # measured 0.0081
    assert heun20 / heun40 > 3.5  # halving the step divides the error by ~4 (2nd order): measured 4.8
    assert ddim20 / ddim40 < 2.5  # DDIM is Euler on the same ODE: first order, measured 1.9
    assert heun20 < ddim40 / 2  # at equal cost: 39 network evaluations against DDIM's 40 (0.039 vs 0.11)
