"""The text-conditioned DiTs (blocks "cross-text" and "joint-text"): shapes, identity init, masking, the null
text, every parameter trained, gradient checkpointing, Gflops, config checks; and what only the joint-attention
block does (its text stream reads the image and the other words)."""

import copy

import pytest
import torch

from ditkit.cli.train import _BLOCKS
from ditkit.codecs.text import TextEncoding
from ditkit.errors import DitkitError
from ditkit.models import DiTConfig, create_model
from ditkit.models.dit import BLOCKS, TEXT_BLOCKS, DiT, model_class
from ditkit.models.flops import count_flops
from ditkit.models.joint_text_dit import JointTextBlock, JointTextDiT
from ditkit.models.text_dit import TextDiT

TINY = dict(input_size=16, patch_size=4, in_channels=3, hidden_size=32, depth=2, num_heads=2, num_classes=0,
            block="cross-text", text_dim=12, text_len=6, learn_sigma=True, class_dropout_prob=0.1)


CLASSES = {"cross-text": TextDiT, "joint-text": JointTextDiT}
assert set(CLASSES) == set(TEXT_BLOCKS)
each_block = pytest.mark.parametrize("block", list(CLASSES))


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = create_model(dict(TINY, **overrides)).eval()
    with torch.no_grad():  # leave the zero init behind, so every path (text included) reaches the output
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


@each_block
def test_builds_by_name_keeps_its_class_and_starts_as_the_identity(block):
    config, cls = dict(TINY, block=block), CLASSES[block]
    model = create_model(config)
    assert type(model) is cls and model_class(block) is cls  # the registry names the class
    with pytest.raises(DitkitError, match="create_model"):  # a plain DiT does not build a text block
        DiT(DiTConfig(**config))
    assert type(copy.deepcopy(model)) is cls  # EMA copies stay text models of their kind
    assert DiTConfig.from_dict(model.config.to_dict()) == model.config
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    out = model(x, t, _text())
    assert out.shape == (2, 6, 16, 16)
    assert torch.all(out == 0)  # adaLN-Zero and zero cross-attention output: the identity-initialised network
    for layer in model.blocks:  # every block passes image and text through unchanged at init
        tokens, c, context = torch.randn(2, 16, 32), torch.randn(2, 32), torch.randn(2, 6, 32)
        new_tokens, new_context = layer(tokens, c, context, torch.ones(2, 6, dtype=torch.bool))
        assert torch.equal(new_tokens, tokens) and torch.equal(new_context, context)


def test_the_cli_offers_exactly_the_models_blocks():
    assert set(_BLOCKS) == set(BLOCKS) | set(TEXT_BLOCKS)


@each_block
def test_padding_tokens_do_not_change_the_output(block):
    model, x, t = _model(block=block), torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    text = _text()
    base = model(x, t, text)
    padded = TextEncoding(text.states.clone(), text.mask, text.pooled)
    padded.states[~text.mask] = 100.0  # garbage where the mask says padding
    assert torch.allclose(model(x, t, padded), base, atol=1e-5)
    real = TextEncoding(text.states.clone(), text.mask, text.pooled)
    real.states[0, 1] += 1.0  # a real token of the first prompt
    changed = model(x, t, real)
    assert not torch.allclose(changed[0], base[0], atol=1e-3) and torch.allclose(changed[1], base[1], atol=1e-5)


@each_block
def test_null_text_and_caption_dropout(block):
    model, x, t = _model(block=block), torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    text = _text()
    null = text.nulled(torch.tensor([True, True]))
    other_null = TextEncoding(torch.randn_like(text.states), torch.zeros_like(text.mask), text.pooled)
    out_null = model(x, t, null)
    assert torch.allclose(model(x, t, other_null), out_null, atol=1e-6)  # null = no tokens, whatever the states
    assert not torch.allclose(model(x, t, text), out_null, atol=1e-3)
    model.null_text.data += torch.randn_like(model.null_text)  # the null output comes from the learned null token
    assert not torch.allclose(model(x, t, null), out_null, atol=1e-3)

    model = _model(block=block, class_dropout_prob=0.5).train()
    torch.manual_seed(0)
    big = _text(n=400, real=[3] * 400)
    context, mask, null = model.text_context(big, torch.float32)
    dropped = mask[:, 1:].sum(1) == 0
    assert torch.equal(null, dropped)
    assert 150 < int(dropped.sum()) < 250  # about half the captions dropped
    assert torch.allclose(context[dropped, 0], model.null_text[0, 0].expand(int(dropped.sum()), -1))
    model.eval()
    assert model.text_context(big, torch.float32)[1][:, :3].all()  # no dropout at inference


def test_pooled_text_joins_the_timestep_embedding():
    """``text_pooled``: the pooled vector reaches every block through adaLN; the null text has its own."""
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    plain = create_model(TINY)
    pooled = create_model(dict(TINY, text_pooled=True))
    extra = {k for k in pooled.state_dict()} - {k for k in plain.state_dict()}
    assert extra == {"pooled_projection.0.weight", "pooled_projection.0.bias", "pooled_projection.2.weight",
                     "pooled_projection.2.bias", "null_pooled"}
    assert torch.all(pooled(x, t, _text()) == 0)  # zero-initialised like the rest: starts as the identity
    model, text = _model(text_pooled=True), _text()
    base = model(x, t, text)
    moved = TextEncoding(text.states, text.mask, text.pooled + 1.0)
    assert not torch.allclose(model(x, t, moved), base, atol=1e-3)  # the pooled vector matters ...
    null = text.nulled(torch.tensor([True, True]))
    other = TextEncoding(null.states, null.mask, null.pooled + 1.0)
    assert torch.allclose(model(x, t, other), model(x, t, null), atol=1e-6)  # ... except for the null text
    out_null = model(x, t, null)
    model.null_pooled.data += 1.0  # the null rows' pooled vector is the learned one
    assert not torch.allclose(model(x, t, null), out_null, atol=1e-3)


@each_block
def test_every_parameter_is_trained(block):
    """No parameter without a gradient: DDP would stop on it (and it would be dead weight)."""
    model = _model(block=block, text_pooled=True).train()
    text = _text(real=(4, 0))  # the second row is the null text, which has its own learned token
    model(torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), text).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@each_block
def test_gradient_checkpointing_gives_the_same_output_and_gradients(block):
    x, t, text = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), _text()
    results = []
    for checkpointing in (False, True):
        model = _model(block=block, class_dropout_prob=0.0).train()
        model.gradient_checkpointing = checkpointing
        out = model(x, t, text)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.allclose(out_a, out_b, atol=1e-6) and len(grads_a) == len(grads_b)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))


def test_joint_text_tokens_read_the_image_and_each_other_but_the_last_block_only_lends_keys():
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


def test_gflops_exceed_adaln_zero_by_the_cross_attention_and_caption_projection():
    cfg = dict(TINY, hidden_size=64, num_heads=4, text_dim=384, text_len=32)
    base = dict(cfg, block="adaln-zero", text_dim=0, text_len=0)
    tokens, d, length = (16 // 4) ** 2, 64, 32
    cross = tokens * d * d + length * 2 * d * d + 2 * tokens * length * d + tokens * d * d  # q, kv, QK^T, AV, proj
    projection = length * (384 * d + d * d)
    assert count_flops(cfg) - count_flops(base) == cfg["depth"] * cross + projection


def test_joint_text_gflops_count_both_streams_and_the_joint_attention():
    cfg = dict(TINY, block="joint-text", hidden_size=64, num_heads=4, text_dim=384, text_len=32)
    base = dict(cfg, block="adaln-zero", text_dim=0, text_len=0)
    tokens, d, length, depth = (16 // 4) ** 2, 64, 32, cfg["depth"]
    text_stream = length * 3 * d * d + length * d * d + 2 * length * 4 * d * d + 6 * d * d  # qkv, proj, MLP, adaLN
    last_text = length * 3 * d * d + 2 * d * d  # keys and values only, and their shift/scale
    joint = 2 * ((tokens + length) ** 2 - tokens ** 2) * d  # QK^T and AV over text + image, beyond image alone
    projection = length * (384 * d + d * d)
    expected = (depth - 1) * text_stream + last_text + depth * joint + projection
    assert count_flops(cfg) - count_flops(base) == expected


@pytest.mark.parametrize("overrides, message", [
    (dict(text_dim=0, text_len=0), "takes text"),
    (dict(block="adaln-zero"), "takes text"),
    (dict(num_classes=10), "no class labels"),
    (dict(block="adaln-zero", text_dim=0, text_len=0, text_pooled=True), "text_pooled needs a text model"),
])
def test_config_checks(overrides, message):
    with pytest.raises(DitkitError, match=message):
        DiTConfig(**dict(TINY, **overrides))


def test_wrong_conditioning_is_a_clear_error():
    model = _model()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    with pytest.raises(DitkitError, match="text model"):
        model(x, t, torch.tensor([1, 2]))
    bad = TextEncoding(torch.randn(2, 6, 7), torch.ones(2, 6, dtype=torch.bool), torch.randn(2, 7))
    with pytest.raises(DitkitError, match="12-wide text states"):
        model(x, t, bad)
