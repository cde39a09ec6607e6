"""UniDiffuser sampling against the official code's golden numbers: the SD schedule in DPM-Solver's continuous
form, the 'fast' singlestep DPM-Solver (grids, orders, three full runs replaying the recorded draws), and
every mode's guided network; plus the two-stage modes and clear errors."""

import json

import pytest
import torch

from ditkit.diffusion.dpm_solver_singlestep import dpm_solver_singlestep_sample, fast_orders, time_uniform_grid
from ditkit.diffusion.unidiffuser import make_draw, mode_denoiser, unidiffuser_sample
from ditkit.diffusion.vp_schedule import DiscreteVPSchedule, stable_diffusion_betas
from ditkit.errors import DitkitError
from ditkit.models.uvit import UViT, UViTConfig, load_uvit_state_dict

from tests.conftest import fixture_path

FIXTURES = fixture_path("reference-unidiffuser")


@pytest.fixture(scope="module")
def net():
    config = UViTConfig.from_dict(json.loads((FIXTURES / "tiny_uvit_config.json").read_text())["nnet"])
    state = torch.load(FIXTURES / "tiny_uvit_state_dict.pt", weights_only=True)
    return load_uvit_state_dict(UViT(config), state).eval()


@pytest.fixture(scope="module")
def solver_expected():
    return torch.load(FIXTURES / "dpm_solver_expected.pt", weights_only=True)


# The official wrappers work on flat vectors: [z (4·8·8), clip (512)] and, for joint, text (77·64) appended.
def _split(mode, x):
    b = x.shape[0]
    if mode == "i2t" or mode == "t":
        return {"text": x}
    parts = {"img": x[:, :256].reshape(b, 4, 8, 8), "clip_img": x[:, 256:768].reshape(b, 1, 512)}
    if mode == "joint":
        parts["text"] = x[:, 768:].reshape(b, 77, 64)
    return parts


def _flat(state):
    if list(state) == ["text"]:
        return state["text"]
    return torch.cat([v.reshape(v.shape[0], -1) for v in state.values()], dim=1)


def _cond(mode, source):
    if mode == "t2i":
        return {"text": source["text"]}
    if mode == "i2t":
        return {"img": source["z"], "clip_img": source["clip_img"]}
    return {}


def test_schedule_matches_official(solver_expected):
    ref = solver_expected["schedule"]
    betas = stable_diffusion_betas()
    torch.testing.assert_close(betas, ref["betas"], atol=1e-12, rtol=0)
    ns = DiscreteVPSchedule(betas)
    torch.testing.assert_close(ns.betas, ref["betas_f32"], atol=0, rtol=0)
    torch.testing.assert_close(ns.t_table, ref["t_discrete"], atol=1e-7, rtol=0)
    torch.testing.assert_close(ns.log_alpha_table, ref["log_alpha_discrete"], atol=2e-6, rtol=0)
    t = ref["t_continuous"]
    for name in ("marginal_log_mean_coeff", "marginal_alpha", "marginal_std", "marginal_lambda"):
        torch.testing.assert_close(getattr(ns, name)(t), ref[name], atol=2e-6, rtol=0)
    torch.testing.assert_close(ns.inverse_lambda(ns.marginal_lambda(t)), ref["inverse_lambda_of_lambda"],
                               atol=2e-6, rtol=0)


@pytest.mark.parametrize("steps", [6, 9, 50])
def test_time_grids_orders_and_model_times(solver_expected, steps):
    ref = solver_expected["time_grids"][steps]
    assert fast_orders(steps) == ref["orders"].tolist()
    torch.testing.assert_close(time_uniform_grid(steps), ref["grid"], atol=1e-6, rtol=0)
    times = []
    dpm_solver_singlestep_sample(lambda x, t: (times.append(t), torch.zeros_like(x))[1], torch.zeros(2, 3), steps)
    assert len(times) == steps  # NFE = steps
    torch.testing.assert_close(torch.stack(times)[:, 0], ref["model_call_t_continuous"], atol=1e-6, rtol=0)


def test_fast_orders_sum_to_steps():
    assert fast_orders(50) == [3] * 16 + [2]
    assert all(sum(fast_orders(n)) == n for n in range(1, 40))


@pytest.mark.parametrize("mode", ["t2i", "i2t", "joint", "i", "t"])
def test_mode_wrappers_match_official(net, mode):
    ref = torch.load(FIXTURES / "tiny_uvit_modes_expected.pt", weights_only=True)
    for call in ref["modes"][mode]:
        draws = call["draws"]["tensors"]
        denoise = mode_denoiser(net, mode, cond=_cond(mode, ref["inputs"]), scale=7.0, draw=make_draw(draws))
        with torch.no_grad():
            out = _flat(denoise(_split(mode, call["x"]), call["timesteps"]))
        torch.testing.assert_close(out, call["out"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["t2i", "i2t", "joint"])
def test_sampling_runs_match_official(net, solver_expected, mode):
    run = solver_expected["sampling"][mode]
    trace = []
    out = unidiffuser_sample(net, mode, 2, cond=_cond(mode, run["cond"]), steps=run["steps"], scale=run["scale"],
                             draw=make_draw(run["draws"]["tensors"]), callback=lambda **kw: trace.append(kw))
    names = {"z": "img", "clip_img": "clip_img", "text": "text"}
    assert sorted(names[k] for k in run["out"]) == sorted(out)
    for key, expected in run["out"].items():
        scale = expected.abs().max().item()  # |x| ≈ 60: a random network, guidance 7
        torch.testing.assert_close(out[names[key]], expected, atol=1e-5 * scale, rtol=0)
    assert len(trace) == len(run["model_calls"]) == run["steps"]
    for mine, theirs in zip(trace, run["model_calls"]):
        torch.testing.assert_close(mine["t"], theirs["t_continuous"], atol=1e-6, rtol=0)
        if "out" in theirs:  # the t2i run records every evaluation's input and guided noise prediction
            torch.testing.assert_close(_flat(mine["x"]), theirs["x"], atol=1e-5 * theirs["x"].abs().max(), rtol=0)
            torch.testing.assert_close(_flat(mine["noise"]), theirs["out"], atol=1e-4, rtol=0)


def test_two_stage_modes_chain_the_single_ones(net):
    gen = torch.Generator().manual_seed(0)
    draws = [torch.randn(2, 4, 8, 8, generator=gen) for _ in range(200)]  # reshaped to whatever each draw needs
    pool = [d.flatten() for d in draws]

    def recorded():
        it = iter(pool)
        return lambda shape, like: torch.cat([next(it) for _ in range(-(-torch.Size(shape).numel() // 512))])[
            :torch.Size(shape).numel()].reshape(shape)

    image = {"img": torch.randn(2, 4, 8, 8, generator=gen), "clip_img": torch.randn(2, 1, 512, generator=gen)}
    both = unidiffuser_sample(net, "i2t2i", 2, cond=image, steps=3, draw=recorded())
    draw = recorded()
    text = unidiffuser_sample(net, "i2t", 2, cond=image, steps=3, draw=draw)
    img = unidiffuser_sample(net, "t2i", 2, cond=text, steps=3, draw=draw)
    assert sorted(both) == ["clip_img", "img", "text"]
    for key in ("text", "img", "clip_img"):
        torch.testing.assert_close(both[key], {**text, **img}[key])
    variation = unidiffuser_sample(net, "t2i2t", 2, cond=text, steps=3, draw=make_draw(generator=gen))
    assert variation["text"].shape == (2, 77, 64) and variation["img"].shape == (2, 4, 8, 8)


def test_missing_condition_and_unknown_mode_are_clear_errors(net):
    with pytest.raises(DitkitError, match="'t2i' needs text"):
        unidiffuser_sample(net, "t2i", 1, steps=1)
    with pytest.raises(DitkitError, match="'i2t2i' needs img and clip_img"):
        unidiffuser_sample(net, "i2t2i", 1, cond={"text": torch.zeros(1, 77, 64)}, steps=1)
    with pytest.raises(DitkitError, match="unknown UniDiffuser mode"):
        unidiffuser_sample(net, "x2y", 1, steps=1)
    with pytest.raises(DitkitError, match="ran out"):
        unidiffuser_sample(net, "joint", 1, steps=3, draw=make_draw([torch.zeros(1, 4, 8, 8)]))
