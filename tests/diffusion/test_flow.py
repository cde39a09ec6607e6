"""The flow-matching process: its math, its samplers against the exact velocity of known data, training and
resuming a flow run, recipes, and bad settings refused before anything is written."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from ditkit.diffusion import SAMPLERS, DiffusionConfig, FlowMatching, create_process, run_sampler
from ditkit.errors import DitkitError
from ditkit.training import TrainConfig, train
from tests.training.test_training import TINY_FLAGS, assert_same, config, make_folder, run_cli, weights  # noqa: F401

FLOW = DiffusionConfig(process="flow", learn_sigma=False)
MU, S = 0.3, 0.5  # data N(MU, S²) per pixel: its exact velocity field is known in closed form


def gaussian_velocity(x_t, network_time):
    """The exact v(x_t, t) = (x_t − E[x_0 | x_t]) / t for x_0 ~ N(MU, S²), x_t = (1 − t) x_0 + t ε."""
    t = (network_time / 1000.0).reshape(-1, *([1] * (x_t.ndim - 1))).double()
    x = x_t.double()
    gain = (1 - t) * S**2 / ((1 - t) ** 2 * S**2 + t**2)
    x0 = MU + gain * (x - (1 - t) * MU)
    return ((x - x0) / t.clamp(min=1e-12)).float()


def test_interpolant_and_conversions():
    process = FlowMatching(FLOW, steps=4)
    x0, eps = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    t = torch.tensor([0.0, 0.5, 1.0])
    x_t = process.q_sample(x0, t, eps)
    assert torch.allclose(x_t[0], x0[0]) and torch.allclose(x_t[2], eps[2])
    v = eps - x0
    tb = t.reshape(-1, 1, 1, 1)
    assert torch.allclose(process.denoised(v, x_t, tb)[:2], x0[:2], atol=1e-6)
    assert torch.allclose(process.noise(v, x_t, tb)[1:], eps[1:], atol=1e-6)
    assert process.grid[0] == 0 and process.grid[-1] == 1 and process.grid.diff().gt(0).all()
    shifted = FlowMatching(DiffusionConfig(process="flow", learn_sigma=False, time_shift=3.0), steps=4)
    assert (shifted.grid[1:-1] > process.grid[1:-1]).all()  # a shift > 1 spends the steps at high noise


def test_x_prediction_gives_the_same_velocity():
    process = FlowMatching(DiffusionConfig(process="flow", learn_sigma=False, prediction="x"))
    x0, eps, t = torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2), torch.tensor([0.3, 0.8]).reshape(-1, 1, 1, 1)
    x_t = (1 - t) * x0 + t * eps
    assert torch.allclose(process.velocity(x0, x_t, t), eps - x0, atol=1e-5)


@pytest.mark.parametrize("name, steps, tol", [("euler", 200, 0.01), ("heun", 10, 0.01), ("dpm++", 10, 0.02),
                                               ("ddim", 100, 0.02), ("ddpm", 200, 0.03)])
def test_every_sampler_draws_the_data_distribution_from_its_exact_velocity(name, steps, tol):
    process = SAMPLERS[name].process(steps, FLOW)
    x_T = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    out = run_sampler(name, gaussian_velocity, process, x_T, generator=torch.Generator().manual_seed(1))
    assert abs(out.mean().item() - MU) < tol and abs(out.std().item() - S) < 2 * tol


def test_ode_samplers_converge_at_second_order_to_a_fine_reference():
    """The ODE is deterministic: against 400 Heun steps, Heun and DPM-Solver++ shrink their endpoint error ~4x
    when the steps double (second order), and Heun at 10 steps beats Euler at the same 19 evaluations."""
    x_T = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(0))

    def error(name, steps):
        out = run_sampler(name, gaussian_velocity, SAMPLERS[name].process(steps, FLOW), x_T)
        return (out - reference).abs().max().item()

    reference = run_sampler("heun", gaussian_velocity, SAMPLERS["heun"].process(400, FLOW), x_T)
    assert error("heun", 20) < error("heun", 10) / 3 and error("dpm++", 20) < error("dpm++", 10) / 3
    assert error("heun", 10) < 0.05 < error("euler", 19)
    assert error("euler", 2000) < 0.1 * error("euler", 200)  # first order: 10x the steps, 1/10 the error


def test_logit_normal_and_shifted_training_times():
    g = torch.Generator().manual_seed(0)
    plain = FlowMatching(DiffusionConfig(process="flow", learn_sigma=False, time_sampling="logit-normal"))
    t = plain.sample_training_t(20000, "cpu", g)
    assert 0 < t.min() and t.max() < 1 and abs(t.median().item() - 0.5) < 0.02
    late = FlowMatching(DiffusionConfig(process="flow", learn_sigma=False, time_sampling="logit-normal",
                                        time_mean=1.0, time_shift=2.0))
    assert late.sample_training_t(20000, "cpu", g).median() > 0.8  # sigmoid(1) = 0.73, shifted by 2: 0.84


def test_a_ddpm_model_refuses_a_flow_only_sampler_and_create_process_picks_the_family():
    assert create_process(DiffusionConfig()).family == "ddpm"
    assert create_process(FLOW, 5).num_timesteps == 5
    with pytest.raises(DitkitError, match="does not run on a ddpm model"):
        SAMPLERS["euler"].process(10, DiffusionConfig())


@pytest.mark.parametrize("settings, message", [
    (dict(time_shift=-1.0), "time shift must be a positive number"),
    (dict(time_shift=float("nan")), "time shift must be a positive number"),
    (dict(time_std=0.0), "std must be a positive number"),
    (dict(prediction="eps"), "prediction must be one of velocity, x"),
    (dict(direction_loss=-0.5), "direction-loss weight must be ≥ 0"),
])
def test_bad_flow_settings_are_one_error(settings, message):
    with pytest.raises(DitkitError, match=message):
        TrainConfig(diffusion=DiffusionConfig(process="flow", **settings))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"), per_class=4)


@pytest.mark.parametrize("extra", [dict(), dict(direction_loss=0.5, prediction="x", time_shift=2.0)])
def test_flow_run_resumes_bit_identically_with_warmup_and_beta2(folder, tmp_path, extra):
    flow = DiffusionConfig(process="flow", time_sampling="logit-normal", **extra)
    kw = dict(diffusion=flow, warmup_steps=3, adam_beta2=0.95, lr=1e-3)
    straight = train(config(folder, tmp_path / "a", max_steps=5, ckpt_every=5, **kw))
    train(config(folder, tmp_path / "b", max_steps=2, ckpt_every=2, **kw))
    resumed = train(config(folder, tmp_path / "b", max_steps=5, ckpt_every=5, resume="latest", **kw))
    for a, b in zip(weights(straight["checkpoint"]), weights(resumed["checkpoint"])):
        assert_same(a, b)
    log = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    assert [r["lr"] for r in log][:4] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3])  # the warm-up, then flat
    assert all(r["cpu_s"] > 0 for r in log)
    saved = json.load(open(os.path.join(straight["checkpoint"], "config.json")))
    assert saved["diffusion"]["process"] == "flow" and saved["model"]["learn_sigma"] is False


def test_recipe_fills_what_flags_leave_and_flags_override_it(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli(["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "2", "--global-batch-size",
                      "4", "--recipe", "fast", "--lr", "5e-4", "--time-shift", "2", "--sample-every", "0",
                      "--out", str(out), "--no-progress"])
    assert result.returncode == 0, result.stderr
    resolved = json.load(open(out / "train_config.json"))["config"]
    assert resolved["recipe"] == "fast" and resolved["lr"] == 5e-4  # the flag beat the recipe's 2e-3
    assert resolved["adam_beta2"] == 0.95 and resolved["warmup_steps"] == 200 and resolved["ema_warmup"] is True
    assert resolved["diffusion"]["process"] == "flow" and resolved["diffusion"]["time_sampling"] == "logit-normal"
    assert resolved["diffusion"]["time_shift"] == 2.0
    assert TrainConfig.from_recipe("dit", data="mnist") == TrainConfig(data="mnist")


@pytest.mark.parametrize("flags, message", [
    (["--recipe", "fast", "--time-shift", "-2"], "time shift must be a positive number"),
    (["--recipe", "nope"], "invalid choice: 'nope'"),
    (["--process", "flow", "--adam-beta2", "1.5"], "beta2 must be in (0, 1)"),
    (["--process", "flow", "--warmup-steps", "-1"], "warmup_steps must be ≥ 0"),
])
def test_bad_recipe_values_are_one_line_and_write_nothing(folder, tmp_path, run_cli, flags, message):
    out = tmp_path / "run"
    try:
        result = run_cli(["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "2", *flags,
                          "--out", str(out), "--no-progress"])
        code, err = result.returncode, result.stderr
    except SystemExit as stop:  # argparse refuses an unknown choice itself (exit 2, its one usage line)
        code, err = stop.code, ""
    assert code == 2
    assert message in err or message.startswith("invalid choice")
    assert not out.exists()


def test_flow_checkpoint_samples_with_its_default_sampler_and_guidance(folder, tmp_path):
    from ditkit.pipelines import generate, load_for_sampling

    result = train(config(folder, tmp_path / "run", max_steps=2, ckpt_every=2,
                          diffusion=DiffusionConfig(process="flow")))
    loaded = load_for_sampling(result["checkpoint"])
    out = generate(loaded.model, num_samples=2, cfg_scale=2.0, diffusion_config=loaded.diffusion_config,
                   progress=False, seed=0)
    again = generate(loaded.model, num_samples=2, cfg_scale=2.0, sampler="heun", steps=10,
                     diffusion_config=loaded.diffusion_config, progress=False, seed=0)
    assert torch.equal(out.latents, again.latents)  # the flow default is Heun, 10 steps
    assert math.isfinite(out.latents.abs().max().item())


def test_bare_sample_command_uses_what_the_checkpoint_records(folder, tmp_path, capsys):
    """``ditkit sample`` without --sampler/--steps/--cfg-scale: the checkpoint's recorded sampling (as bundled
    models carry it), else the process's defaults; a flag given overrides just that setting."""
    from ditkit.cli import main

    result = train(config(folder, tmp_path / "run", max_steps=2, ckpt_every=2,
                          diffusion=DiffusionConfig(process="flow")))
    ckpt = result["checkpoint"]

    def settings(*flags, out):
        assert main(["sample", "--checkpoint", ckpt, "-n", "2", "--seed", "0",
                     *flags, "--out", str(tmp_path / out)]) == 0
        return json.load(open(tmp_path / out / "run.json"))["settings"]

    plain = settings(out="plain")
    assert (plain["sampler"], plain["steps"], plain["cfg_scale"]) == ("heun", 10, 1.0)  # the flow defaults
    record = json.load(open(os.path.join(ckpt, "config.json")))
    record["extra"]["sampling"] = {"sampler": "dpm++", "steps": 6, "cfg_scale": 2.5}
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(record, f)
    recorded = settings(out="recorded")
    assert (recorded["sampler"], recorded["steps"], recorded["cfg_scale"]) == ("dpm++", 6, 2.5)
    mixed = settings("--sampler", "euler", out="mixed")  # another sampler: its own default steps
    assert (mixed["sampler"], mixed["steps"], mixed["cfg_scale"]) == ("euler", 20, 2.5)


def test_export_refuses_a_flow_model_and_writes_nothing(folder, tmp_path, capsys):
    from ditkit.cli import main

    result = train(config(folder, tmp_path / "run", max_steps=1, ckpt_every=1,
                          diffusion=DiffusionConfig(process="flow")))
    capsys.readouterr()
    code = main(["export", result["checkpoint"], "--out", str(tmp_path / "exported")])
    err = capsys.readouterr().err
    assert code == 2 and "trained with flow matching" in err and err.count("\n") == 1
    assert not (tmp_path / "exported").exists()
