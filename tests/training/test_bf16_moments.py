"""``--adamw-moments bf16``: AdamW's arithmetic with bf16 storage — half the optimizer state, a training that
follows the fp32 one, exact resume, and stochastic rounding where nearest rounding would freeze the moment."""

import json
import os

import torch

from ditkit.training import train
from ditkit.training.bf16_moments import AdamWBf16Moments, stochastic_round_to_bf16

from tests.training.test_training import assert_same, config, make_folder, weights


def test_first_step_equals_adamw_and_moments_are_stored_in_bf16():
    torch.manual_seed(0)
    a = torch.nn.Linear(32, 32)
    b = torch.nn.Linear(32, 32)
    b.load_state_dict(a.state_dict())
    x = torch.randn(16, 32)
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=0.1)
    opt_b = AdamWBf16Moments(b.parameters(), lr=1e-2, weight_decay=0.1)
    for net, opt in ((a, opt_a), (b, opt_b)):
        net(x).square().mean().backward()
        opt.step()
    # the first update reads the fp32 moments before they are stored: AdamW's own numbers
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa)
    state = opt_b.state[b.weight]
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.bfloat16
    full = opt_a.state[a.weight]
    assert state["exp_avg"].element_size() * 2 == full["exp_avg"].element_size()


def test_stochastic_rounding_is_unbiased_where_nearest_would_freeze():
    value = torch.full((200_000,), 1.0 + 2**-10)  # between bf16 neighbours 1 and 1 + 2**-7, an eighth of the way
    rounded = stochastic_round_to_bf16(value, torch.Generator().manual_seed(0)).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0 + 2**-7}
    assert abs(rounded.mean().item() - value[0].item()) < 2e-5
    # the second moment of a constant gradient 1 reaches 1 - 0.999**t; to nearest it stalls far below
    v_sr, v_near = torch.zeros(4096, dtype=torch.bfloat16), torch.zeros(4096, dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    for _ in range(3000):
        v_sr = stochastic_round_to_bf16(v_sr.float().mul_(0.999).add_(0.001), g)
        v_near = v_near.float().mul_(0.999).add_(0.001).to(torch.bfloat16)
    target = 1 - 0.999**3000
    assert abs(v_sr.float().mean().item() - target) < 0.01 * target
    assert v_near.float().mean().item() < 0.7 * target


def test_training_follows_fp32_and_resumes_exactly(tmp_path):
    folder = make_folder(tmp_path / "data", per_class=8)
    runs = {}
    for moments in ("fp32", "bf16"):
        out = tmp_path / moments
        train(config(folder, out, max_steps=40, ckpt_every=40, log_every=1, lr=3e-3, precision="fp32",
                     adamw_moments=moments))
        runs[moments] = [json.loads(x)["loss"] for x in open(out / "metrics.jsonl")]
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert bf16[0] == fp32[0]  # the first step's loss comes before any update
    # same data and draws: the curves stay together (the noise across timesteps is far larger than this)
    assert abs(sum(bf16[-10:]) - sum(fp32[-10:])) / sum(fp32[-10:]) < 0.05
    assert sum(bf16[-10:]) < 0.7 * sum(bf16[:10])  # and it learns
    # resume: 15 + 25 steps gives the straight run's weights and moments bit for bit
    train(config(folder, tmp_path / "split", max_steps=15, ckpt_every=15, precision="fp32", lr=3e-3, adamw_moments="bf16"))
    resumed = train(config(folder, tmp_path / "split", max_steps=40, ckpt_every=40, precision="fp32", lr=3e-3,
                           adamw_moments="bf16", resume="latest"))
    straight = os.path.join(tmp_path / "bf16", "checkpoints", "step-0000040")
    for a, b in zip(weights(straight), weights(resumed["checkpoint"])):
        assert_same(a, b)
    opt = torch.load(os.path.join(resumed["checkpoint"], "optimizer.pt"), weights_only=True)
    assert all(s["exp_avg_sq"].dtype == torch.bfloat16 for s in opt["state"].values())
