"""Per-timestep weights of the ε-MSE (``--loss-weighting``): the paper's L_simple by default, truncated-SNR
and P2 as options; the weight reaches the minimised loss only, is stored in checkpoints and resumes exactly."""

import json
import os

import numpy as np
import pytest
import torch

from ditkit.diffusion import DiffusionConfig
from ditkit.diffusion.gaussian import create_diffusion
from ditkit.errors import DitkitError
from ditkit.training import train

from tests.training.test_training import assert_same, config, make_folder, weights


def _terms(weighting, t):
    process = create_diffusion(None, loss_weighting=weighting)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(len(t), 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    out = torch.randn(len(t), 6, 8, 8, generator=g)  # a fixed "network output": ε̂ and the variance channels
    return process, process.training_losses(lambda x_t, tt: out, x0, t, noise)


def test_weights_follow_the_snr_formulas():
    t = torch.tensor([0, 100, 250, 500, 750, 999])
    ac = create_diffusion(None).alphas_cumprod[t.numpy()]
    snr = ac / (1 - ac)
    expected = {"eps": np.ones_like(snr), "truncated-snr": np.maximum(1, 1 / snr), "p2": 1 / (1 + snr),
                "min-snr": np.minimum(snr, 5) / snr}
    for name, want in expected.items():
        process, terms = _terms(name, t)
        got = (terms["loss"] - terms["vb"]) / terms["mse"]
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-3)  # float32 (loss - vb) at t = 0
    # truncated SNR leaves the clean steps alone and lifts the noisy ones by orders of magnitude
    w = expected["truncated-snr"]
    assert w[0] == w[1] == 1 and w[-1] > 1e4
    # min-SNR-5 damps only the clean steps (SNR > 5), where the ε-MSE's x₀ weight is largest
    assert expected["min-snr"][0] < 1e-3 and expected["min-snr"][-1] == 1


def test_only_the_minimised_loss_changes():
    t = torch.tensor([10, 400, 900, 999])
    _, plain = _terms("eps", t)
    for name in ("truncated-snr", "p2", "min-snr"):
        _, weighted = _terms(name, t)
        assert torch.equal(weighted["mse"], plain["mse"]) and torch.equal(weighted["vb"], plain["vb"])
        assert not torch.equal(weighted["loss"], plain["loss"])
    assert torch.equal(plain["loss"], plain["mse"] + plain["vb"])  # the default is the paper's hybrid loss


def test_unknown_weighting_is_one_clear_error(tmp_path):
    with pytest.raises(DitkitError, match="unknown loss weighting 'snr'.*eps, truncated-snr, p2, min-snr"):
        create_diffusion(None, loss_weighting="snr")
    assert DiffusionConfig().loss_weighting == "eps"
    assert DiffusionConfig.from_dict({"diffusion_steps": 1000}).loss_weighting == "eps"  # older checkpoints


def test_cli_flag_is_stored_and_resumes_exactly(tmp_path, capsys):
    from ditkit.cli import main

    data = make_folder(tmp_path / "data", per_class=4)
    with pytest.raises(SystemExit) as stop:  # argparse's usage error, exit status 2
        main(["train", "--data", data, "--image-size", "8", "--depth", "2", "--hidden-size", "32", "--num-heads", "2",
              "--patch-size", "4", "--max-steps", "1", "--global-batch-size", "4", "--loss-weighting", "sqrt",
              "--out", str(tmp_path / "bad"), "--no-progress"])
    assert stop.value.code == 2
    assert "invalid choice: 'sqrt'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "bad")

    diffusion = {"loss_weighting": "truncated-snr"}
    straight = train(config(data, tmp_path / "a", max_steps=4, ckpt_every=4, diffusion=diffusion))
    train(config(data, tmp_path / "b", max_steps=2, ckpt_every=2, diffusion=diffusion))
    resumed = train(config(data, tmp_path / "b", max_steps=4, ckpt_every=4, resume="latest", diffusion=diffusion))
    for a, b in zip(weights(straight["checkpoint"]), weights(resumed["checkpoint"])):
        assert_same(a, b)
    with open(os.path.join(straight["checkpoint"], "config.json"), encoding="utf-8") as f:
        assert json.load(f)["diffusion"]["loss_weighting"] == "truncated-snr"
    # the weighting changes what is learned: the same run with the paper's loss ends elsewhere
    plain = train(config(data, tmp_path / "c", max_steps=4, ckpt_every=4))
    raw_w, _ = weights(straight["checkpoint"])
    raw_p, _ = weights(plain["checkpoint"])
    assert not torch.equal(raw_w["final_layer.linear.weight"], raw_p["final_layer.linear.weight"])
