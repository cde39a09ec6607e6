"""``--optimizer-in-backward``: AdamW inside backward gives the same training as the usual step, without
whole-model gradients, resumes exactly across the two modes, and refuses what needs every gradient at once."""

import json
import os

import pytest
import torch

from ditkit.errors import DitkitError
from ditkit.training import train
from ditkit.training.optimizer_in_backward import OptimizerInBackward, check_supported

from tests.training.test_training import assert_same, config, make_folder, weights


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("extra", [{}, {"grad_checkpointing": True}, {"precision": "bf16"}])
def test_same_weights_moments_and_losses_as_the_usual_step(folder, tmp_path, extra):
    usual = train(config(folder, tmp_path / "a", max_steps=5, ckpt_every=5, **{"precision": "fp32", **extra}))
    fused = train(config(folder, tmp_path / "b", max_steps=5, ckpt_every=5, optimizer_in_backward=True,
                         **{"precision": "fp32", **extra}))
    for a, b in zip(weights(usual["checkpoint"]), weights(fused["checkpoint"])):
        assert_same(a, b)
    opt_a = torch.load(os.path.join(usual["checkpoint"], "optimizer.pt"), weights_only=True)
    opt_b = torch.load(os.path.join(fused["checkpoint"], "optimizer.pt"), weights_only=True)
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for i in opt_a["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a["state"][i][key], opt_b["state"][i][key]), (i, key)
    la = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    lb = [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    # the norm summed tensor by tensor during backward is the global gradient norm
    assert [r["grad_norm"] for r in lb] == pytest.approx([r["grad_norm"] for r in la], rel=1e-5)


def test_resumes_exactly_from_a_usual_checkpoint(folder, tmp_path):
    straight = train(config(folder, tmp_path / "a", max_steps=5, ckpt_every=5, precision="fp32"))
    train(config(folder, tmp_path / "b", max_steps=2, ckpt_every=2, precision="fp32"))
    resumed = train(config(folder, tmp_path / "b", max_steps=5, ckpt_every=5, resume="latest", precision="fp32",
                           optimizer_in_backward=True))
    for a, b in zip(weights(straight["checkpoint"]), weights(resumed["checkpoint"])):
        assert_same(a, b)


def test_no_gradient_outlives_its_update():
    """During backward at most the tensors in flight hold gradients; after it, none."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(6)])
    before = [p.detach().clone() for p in net.parameters()]
    live = []  # gradients held when each one completes (hooks run in order: this one before the update)
    for p in net.parameters():
        p.register_post_accumulate_grad_hook(lambda _: live.append(sum(q.grad is not None for q in net.parameters())))
    hooks = OptimizerInBackward(torch.optim.AdamW(net.parameters(), lr=1e-2))
    norm = hooks.backward(net(torch.randn(4, 16)).square().mean(), want_norm=True)
    assert all(p.grad is None for p in net.parameters())
    assert live == [1] * 12  # each gradient is freed by its update before the next one completes
    assert all(not torch.equal(a, p) for a, p in zip(before, net.parameters())) and norm > 0


def test_settings_that_need_every_gradient_are_refused(folder, tmp_path):
    with pytest.raises(DitkitError, match=r"--optimizer-in-backward cannot be combined with --max-grad-norm"):
        train(config(folder, tmp_path / "run", optimizer_in_backward=True, max_grad_norm=1.0))
    assert not os.path.exists(tmp_path / "run")  # refused before anything is written
    # fp16 needs a GPU and DDP several processes: the check itself names each
    with pytest.raises(DitkitError, match="fp16.*grad scaler"):
        check_supported(config(folder, tmp_path / "x", optimizer_in_backward=True, precision="fp16"), False)
    with pytest.raises(DitkitError, match="several processes"):
        check_supported(config(folder, tmp_path / "x", optimizer_in_backward=True), True)
