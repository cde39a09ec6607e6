"""The text-conditioned DiT (block "cross-text"): shapes, masking, the null text, Gflops, config checks."""

import copy

import pytest
import torch

from ditkit.codecs.text import TextEncoding
from ditkit.errors import DitkitError
from ditkit.models import DiTConfig, create_model
from ditkit.models.dit import DiT
from ditkit.models.flops import count_flops
from ditkit.models.text_dit import TextDiT

TINY = dict(input_size=16, patch_size=4, in_channels=3, hidden_size=32, depth=2, num_heads=2, num_classes=0,
            block="cross-text", text_dim=12, text_len=6, learn_sigma=True, class_dropout_prob=0.1)


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


def test_builds_by_name_and_keeps_its_class():
    model = create_model(TINY)
    assert isinstance(model, TextDiT) and isinstance(DiT(DiTConfig(**TINY)), TextDiT)
    assert isinstance(copy.deepcopy(model), TextDiT)  # EMA copies stay text models
    assert DiTConfig.from_dict(model.config.to_dict()) == model.config
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    out = model(x, t, _text())
    assert out.shape == (2, 6, 16, 16)
    assert torch.all(out == 0)  # adaLN-Zero and zero cross-attention output: the identity-initialised network


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


def test_null_text_and_caption_dropout():
    model, x, t = _model(), torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    text = _text()
    null = text.nulled(torch.tensor([True, True]))
    other_null = TextEncoding(torch.randn_like(text.states), torch.zeros_like(text.mask), text.pooled)
    out_null = model(x, t, null)
    assert torch.allclose(model(x, t, other_null), out_null, atol=1e-6)  # null = no tokens, whatever the states
    assert not torch.allclose(model(x, t, text), out_null, atol=1e-3)
    model.null_text.data += 1.0  # the null output comes from the learned null token
    assert not torch.allclose(model(x, t, null), out_null, atol=1e-3)

    model = _model(class_dropout_prob=0.5).train()
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


def test_gradient_checkpointing_gives_the_same_output():
    model, x, t = _model(), torch.randn(2, 3, 16, 16), torch.tensor([3, 700])
    model.train()
    model.config.class_dropout_prob = 0.0
    ref = model(x, t, _text())
    model.gradient_checkpointing = True
    assert torch.allclose(model(x, t, _text()), ref, atol=1e-6)


def test_gflops_exceed_adaln_zero_by_the_cross_attention_and_caption_projection():
    cfg = dict(TINY, hidden_size=64, num_heads=4, text_dim=384, text_len=32)
    base = dict(cfg, block="adaln-zero", text_dim=0, text_len=0)
    tokens, d, length = (16 // 4) ** 2, 64, 32
    cross = tokens * d * d + length * 2 * d * d + 2 * tokens * length * d + tokens * d * d  # q, kv, QK^T, AV, proj
    projection = length * (384 * d + d * d)
    assert count_flops(cfg) - count_flops(base) == cfg["depth"] * cross + projection


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
