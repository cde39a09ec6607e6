"""Training levers beside the process: the dispersive loss (its formula, where it hooks, exact resume, bad
settings) — flow matching's own levers are in tests/diffusion/test_flow.py, the loss weightings in
test_loss_weighting.py."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ditkit.errors import DitkitError
from ditkit.training import DiffusionObjective, train
from ditkit.training.dispersive import BlockStates, dispersive_loss
from tests.training.test_training import assert_same, config, make_folder, weights


def test_dispersive_loss_is_zero_for_a_collapsed_batch_and_falls_as_states_spread():
    same = torch.ones(8, 4, 16)
    assert dispersive_loss(same).item() == pytest.approx(0.0, abs=1e-6)  # log mean exp(0) = 0
    near, far = torch.randn(8, 64) * 0.1, torch.randn(8, 64) * 3
    assert dispersive_loss(far) < dispersive_loss(near) < 0
    # every pair at distance² d·τ·k apart except the diagonal: log((N + (N²−N) e^{−k}) / N²)
    z = torch.eye(4) * math.sqrt(4 * 0.5 * 1.0 / 2)  # ‖e_i − e_j‖² · s² = 2s² = d τ k with k = 1
    assert dispersive_loss(z).item() == pytest.approx(math.log((4 + 12 * math.exp(-1.0)) / 16), rel=1e-5)


def test_block_states_reads_the_middle_block_and_releases_its_hook():
    from ditkit.models import create_model

    model = create_model("DiT-S/2", input_size=8, in_channels=1, num_classes=2, depth=4, hidden_size=32, num_heads=2)
    with BlockStates(model, None) as states:
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))
    assert states.index == 2 and states.state.shape == (2, 16, 32)
    assert not model.blocks[2]._forward_hooks


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"), per_class=4)


def test_dispersive_run_logs_the_term_and_resumes_bit_identically(folder, tmp_path):
    kw = dict(dispersive_loss=0.5, dispersive_block=1)
    straight = train(config(folder, tmp_path / "a", max_steps=4, ckpt_every=4, **kw))
    train(config(folder, tmp_path / "b", max_steps=2, ckpt_every=2, **kw))
    resumed = train(config(folder, tmp_path / "b", max_steps=4, ckpt_every=4, resume="latest", **kw))
    for a, b in zip(weights(straight["checkpoint"]), weights(resumed["checkpoint"])):
        assert_same(a, b)
    log = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    assert all(r["dispersive"] < 0 for r in log)
    assert all(r["loss"] == pytest.approx(r["mse"] + r["vb"] + 0.5 * r["dispersive"], rel=1e-5) for r in log)
    plain = train(config(folder, tmp_path / "c", max_steps=4, ckpt_every=4))
    assert not torch.equal(weights(plain["checkpoint"])[0]["blocks.0.attn.qkv.weight"],
                           weights(straight["checkpoint"])[0]["blocks.0.attn.qkv.weight"])


@pytest.mark.parametrize("kw, message", [
    (dict(dispersive_loss=0.5, dispersive_block=7), "--dispersive-block must be between 0 and 1"),
    (dict(dispersive_loss=-1.0), "dispersive-loss weight must be ≥ 0"),
])
def test_bad_dispersive_settings_are_one_error_and_write_nothing(folder, tmp_path, kw, message):
    with pytest.raises(DitkitError, match=message):
        train(config(folder, tmp_path / "run", **kw))
    assert not (tmp_path / "run").exists()


def test_the_default_objective_has_no_regulariser():
    assert DiffusionObjective(None).dispersive == 0.0
