"""The joint-attention text DiT (block "joint-text", SD3's MM-DiT layout): identity init, masking, the text
stream reading the image, every parameter trained, Gflops, and a run trained and sampled through the CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from ditkit.cli import main
from ditkit.cli.train import _BLOCKS
from ditkit.codecs.text import TextEncoding
from ditkit.models import DiTConfig, create_model
from ditkit.models.dit import BLOCKS, TEXT_BLOCKS, DiT
from ditkit.models.flops import count_flops
from ditkit.models.joint_text_dit import JointTextBlock, JointTextDiT
from ditkit.models.text_dit import TextDiT

TINY = dict(input_size=16, patch_size=4, in_channels=3, hidden_size=32, depth=3, num_heads=2, num_classes=0,
            block="joint-text", text_dim=12, text_len=6, learn_sigma=True, class_dropout_prob=0.1)


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = create_model(dict(TINY, **overrides)).eval()
    with torch.no_grad():  # leave the zero init behind, so every path reaches the output
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def _text(n=2, real=(4, 2), seed=1):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(n, TINY["text_len"], TINY["text_dim"], generator=g)
    mask = torch.zeros(n, TINY["text_len"], dtype=torch.bool)
    for i, k in enumerate(real):
        mask[i, :k] = True
    return TextEncoding(states, mask, states.mean(1))


def test_builds_by_name_and_starts_as_the_identity():
    model = create_model(TINY)
    assert isinstance(model, JointTextDiT) and isinstance(DiT(DiTConfig(**TINY)), JointTextDiT)
    assert isinstance(model, TextDiT) and isinstance(copy.deepcopy(model), JointTextDiT)  # EMA copies too
    assert DiTConfig.from_dict(model.config.to_dict()) == model.config
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), _text())
    assert out.shape == (2, 6, 16, 16) and torch.all(out == 0)  # zero gates and final layer
    for block in model.blocks:  # both streams of every block are the identity at init
        x, c, ctx = torch.randn(2, 16, 32), torch.randn(2, 32), torch.randn(2, 6, 32)
        new_x, new_ctx = block(x, c, ctx, torch.ones(2, 6, dtype=torch.bool))
        assert torch.equal(new_x, x) and torch.equal(new_ctx, ctx)


def test_the_cli_offers_exactly_the_models_blocks():
    assert set(_BLOCKS) == set(BLOCKS) | set(TEXT_BLOCKS)


def test_padding_tokens_do_not_change_the_output():
    model, x, t = _model(), torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    text = _text()
    base = model(x, t, text)
    padded = TextEncoding(text.states.clone(), text.mask, text.pooled)
    padded.states[~text.mask] = 100.0  # garbage where the mask says padding
    assert torch.allclose(model(x, t, padded), base, atol=1e-5)
    real = TextEncoding(text.states.clone(), text.mask, text.pooled)
    real.states[0, 1] += 1.0  # a real token of the first prompt
    changed = model(x, t, real)
    assert not torch.allclose(changed[0], base[0], atol=1e-3) and torch.allclose(changed[1], base[1], atol=1e-5)
    null = text.nulled(torch.tensor([True, True]))
    other_null = TextEncoding(torch.randn_like(text.states), torch.zeros_like(text.mask), text.pooled)
    assert torch.allclose(model(x, t, other_null), model(x, t, null), atol=1e-6)  # the null text is one thing


def test_text_tokens_read_the_image_and_each_other_but_the_last_block_only_lends_keys():
    torch.manual_seed(0)
    block, last = JointTextBlock(32, 2, 4.0), JointTextBlock(32, 2, 4.0, last=True)
    for module in (block, last):
        with torch.no_grad():
            for p in module.parameters():
                p.normal_(0, 0.2)
    x, c, ctx = torch.randn(2, 16, 32), torch.randn(2, 32), torch.randn(2, 6, 32)
    mask = torch.ones(2, 6, dtype=torch.bool)
    _, ctx_out = block(x, c, ctx, mask)
    _, ctx_other_image = block(torch.randn_like(x), c, ctx, mask)  # (a constant shift would be normalised away)
    assert not torch.allclose(ctx_out, ctx_other_image, atol=1e-3)  # the text stream attends to the image
    moved = ctx.clone()
    moved[:, 5] = torch.randn(2, 32)
    assert not torch.allclose(block(x, c, moved, mask)[1][:, 0], ctx_out[:, 0], atol=1e-3)  # and to other words
    x_last, ctx_last = last(x, c, ctx, mask)
    assert ctx_last is ctx and not hasattr(last.text, "mlp") and not torch.allclose(x_last, x)


def test_every_parameter_is_trained():
    """No parameter without a gradient: DDP would stop on it (and it would be dead weight)."""
    model = _model().train()
    text = _text(real=(4, 0))  # the second row is the null text, which has its own learned token
    model(torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), text).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_gradient_checkpointing_gives_the_same_output_and_gradients():
    x, t, text = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), _text()
    results = []
    for checkpointing in (False, True):
        model = _model(class_dropout_prob=0.0).train()
        model.gradient_checkpointing = checkpointing
        out = model(x, t, text)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.allclose(out_a, out_b, atol=1e-6) and len(grads_a) == len(grads_b)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))


def test_gflops_count_both_streams_and_the_joint_attention():
    cfg = dict(TINY, hidden_size=64, num_heads=4, text_dim=384, text_len=32)
    base = dict(cfg, block="adaln-zero", text_dim=0, text_len=0)
    tokens, d, length, depth = (16 // 4) ** 2, 64, 32, cfg["depth"]
    text_stream = length * 3 * d * d + length * d * d + 2 * length * 4 * d * d + 6 * d * d  # qkv, proj, MLP, adaLN
    last_text = length * 3 * d * d + 2 * d * d  # keys and values only, and their shift/scale
    joint = 2 * ((tokens + length) ** 2 - tokens ** 2) * d  # QK^T and AV over text + image, beyond image alone
    projection = length * (384 * d + d * d)
    expected = (depth - 1) * text_stream + last_text + depth * joint + projection
    assert count_flops(cfg) - count_flops(base) == expected


def test_trained_and_sampled_through_the_cli(tiny_bert, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data", "shapes", "--text-encoder", tiny_bert, "--model", "DiT-S/4", "--depth", "2",
              "--hidden-size", "32", "--num-heads", "2", "--image-size", "16", "--global-batch-size", "8",
              "--lr", "3e-3", "--ema-decay", "0", "--log-every", "5", "--no-progress"]
    assert main(["train", *common, "--block", "joint-text", "--max-steps", "10", "--ckpt-every", "10",
                 "--sample-every", "0", "--out", str(out)]) == 0
    step = out / "checkpoints" / "step-0000010"
    config = json.loads((step / "config.json").read_text())
    assert config["model"]["block"] == "joint-text" and config["model"]["text_len"] == 32
    samples = tmp_path / "samples"
    assert main(["sample", "--checkpoint", str(step), "--prompt", "a large red circle left of a small blue square",
                 "-n", "2", "--sampler", "ddim", "--steps", "2", "--cfg-scale", "3", "--out", str(samples)]) == 0
    assert len(list((samples / "samples").glob("*.png"))) == 2
    capsys.readouterr()
    assert main(["train", *common, "--block", "adaln-zero", "--max-steps", "1", "--out", str(tmp_path / "bad")]) == 2
    assert "text block" in capsys.readouterr().err and not (tmp_path / "bad").exists()
