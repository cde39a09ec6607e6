"""The sampler contract's step callback: every registry sampler, on every process it runs on (DDPM, flow, VP),
calls ``callback(x=, i=, t=, denoised=)`` once per step, in order, with the times its denoiser was given, and
the callback changes no number."""

import pytest
import torch

from ditkit.diffusion import SAMPLERS, DiffusionConfig, run_sampler
from ditkit.diffusion.state import tree_map
from ditkit.diffusion.vp_schedule import DiscreteVPSchedule

DDPM = DiffusionConfig(learn_sigma=False)
FLOW = DiffusionConfig(process="flow", learn_sigma=False)
STEPS = 5
KEYS = {"x", "i", "t", "denoised"}


def _process(spec, family: str):
    if family == "vp":
        return DiscreteVPSchedule().with_steps(STEPS)
    return spec.process(STEPS, DDPM if family == "ddpm" else FLOW)


def _cases():
    return [(name, family) for name, spec in SAMPLERS.items() for family in ("ddpm", "flow", "vp")
            if spec.target_for(family) is not None]


def _denoiser(times: list):
    def denoise(x, t):  # a smooth made-up prediction of the right shape (ε, or v on the flow process)
        times.append(t.clone())
        return tree_map(lambda leaf: 0.3 * leaf + 0.1 * torch.tanh(leaf), x)

    return denoise


def _state(structured: bool):
    g = torch.Generator().manual_seed(0)
    if structured:
        return {"img": torch.randn(3, 2, 4, 4, generator=g), "text": torch.randn(3, 5, 6, generator=g)}
    return torch.randn(3, 2, 4, 4, generator=g)


def test_every_registry_sampler_runs_on_some_process():
    assert {name for name, _ in _cases()} == set(SAMPLERS)
    assert ("dpm-solver", "vp") in _cases() and {f for _, f in _cases()} == {"ddpm", "flow", "vp"}


@pytest.mark.parametrize("structured", [False, True])
@pytest.mark.parametrize("name, family", _cases())
def test_the_callback_sees_every_step_with_the_documented_keys(name, family, structured):
    process = _process(SAMPLERS[name], family)
    times, steps = [], []
    x_T = _state(structured)
    out = run_sampler(name, _denoiser(times), process, x_T, generator=torch.Generator().manual_seed(1),
                      callback=lambda **step: steps.append(step))
    assert len(steps) == process.num_timesteps == STEPS
    assert [s["i"] for s in steps] == list(range(STEPS))
    for step in steps:
        assert set(step) == KEYS
        assert tree_map(lambda v: v.shape, step["x"]) == tree_map(lambda v: v.shape, x_T)
        assert tree_map(lambda v: v.shape, step["denoised"]) == tree_map(lambda v: v.shape, x_T)
        assert step["t"].shape == (3,)
        assert any(torch.equal(step["t"], t) for t in times)  # the time the denoiser was given at that step
    shown = [s["t"][0].item() for s in steps]
    assert shown == sorted(shown, reverse=True) and len(set(shown)) == STEPS  # from noise to data, one time each
    tree_map(lambda a, b: torch.testing.assert_close(a, b), steps[0]["x"], x_T)  # x as the process writes it
    if family == "flow" or name in ("dpm++", "heun"):  # these return the last step's x̂_0
        tree_map(lambda a, b: torch.testing.assert_close(a, b), steps[-1]["denoised"], out)


@pytest.mark.parametrize("name, family", _cases())
def test_the_callback_changes_no_number(name, family):
    process = _process(SAMPLERS[name], family)
    plain = run_sampler(name, _denoiser([]), process, _state(True), generator=torch.Generator().manual_seed(2))
    seen = run_sampler(name, _denoiser([]), process, _state(True), generator=torch.Generator().manual_seed(2),
                       callback=lambda **_: None)
    tree_map(lambda a, b: torch.testing.assert_close(a, b, atol=0, rtol=0), plain, seen)


def test_the_vp_process_gives_the_network_1000_t_and_its_steps_are_the_solvers_evaluations():
    times, steps = [], []
    run_sampler("dpm-solver", _denoiser(times), DiscreteVPSchedule().with_steps(6), torch.zeros(2, 3),
                callback=lambda **s: steps.append(s))
    assert len(times) == len(steps) == 6
    assert all(torch.equal(s["t"], t) for s, t in zip(steps, times))
    grid = torch.linspace(1.0, 1e-3, 7)[:6]  # one evaluation per grid point (intermediate ones at their λ)
    torch.testing.assert_close(torch.stack(times)[:, 0], 1000 * grid, atol=1e-2, rtol=0)


def test_samplers_that_do_not_run_on_a_process_say_so():
    from ditkit.errors import DitkitError

    with pytest.raises(DitkitError, match="the heun sampler does not run on a vp model"):
        run_sampler("heun", _denoiser([]), DiscreteVPSchedule().with_steps(3), torch.zeros(1, 2))
    with pytest.raises(DitkitError, match="does not run on a ddpm model"):
        SAMPLERS["dpm-solver"].process(10, DDPM)
