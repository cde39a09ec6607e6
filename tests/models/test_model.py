"""The DiT design space: blocks, init, conditioning, unconditional models, checkpointing."""

import pytest
import torch

from ditkit.errors import DitkitError
from ditkit.models import BLOCKS, DiTConfig, create_model
from ditkit.models.embeddings import sincos_2d_position_embedding

TINY = dict(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2, num_heads=2, num_classes=5)


def inputs(n=3, channels=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, channels, 8, 8, generator=g), torch.tensor([0, 500, 999][:n]), torch.tensor([0, 4, 5][:n])


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_design_runs_and_trains(block):
    torch.manual_seed(0)
    model = create_model(TINY, block=block)
    x, t, y = inputs()
    out = model(x, t, y)
    assert out.shape == (3, 6, 8, 8)
    # the zero-initialised decoder predicts exactly zero at init, for every design
    assert out.abs().max() == 0
    out_loss = model(x, t, y).pow(2).mean() + (model(x, t, y) - 1).pow(2).mean()
    out_loss.backward()
    assert model.final_layer.linear.weight.grad.abs().sum() > 0


def test_adaln_zero_blocks_start_as_identity():
    model = create_model(TINY)
    x, t, y = inputs()
    tokens = model.x_embedder(x) + model.pos_embed
    c = model.t_embedder(t) + model.y_embedder(y, False)
    for block in model.blocks:
        assert torch.equal(block(tokens, c), tokens)
    adaln = create_model(TINY, block="adaln")
    assert not torch.equal(adaln.blocks[0](tokens, c), tokens)


def test_init_follows_the_paper():
    torch.manual_seed(0)
    model = create_model("DiT-S/2", input_size=16, num_classes=10)
    assert model.y_embedder.embedding_table.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.t_embedder.mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.1)
    qkv = model.blocks[0].attn.qkv.weight
    bound = (6 / (qkv.shape[0] + qkv.shape[1])) ** 0.5  # xavier-uniform
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.9 * bound
    assert all(b.adaLN_modulation[-1].weight.abs().sum() == 0 for b in model.blocks)
    assert not model.pos_embed.requires_grad
    assert "pos_embed" not in dict(model.named_parameters()) and "pos_embed" in model.state_dict()


def test_label_dropout_only_in_training():
    model = create_model(TINY, class_dropout_prob=0.5)
    y = torch.zeros(1000, dtype=torch.long)
    dropped = model.y_embedder.drop_labels(y)
    assert 400 < (dropped == 5).sum() < 600
    model.eval()
    assert torch.equal(model.y_embedder(y, train=False), model.y_embedder.embedding_table(y))
    assert model.null_class == 5


def test_unconditional_model_has_no_label_table():
    model = create_model(TINY, num_classes=0)
    assert model.y_embedder is None and model.null_class is None
    assert not any("y_embedder" in k for k in model.state_dict())
    x, t, _ = inputs()
    assert model(x, t).shape == (3, 6, 8, 8)
    with pytest.raises(DitkitError, match="unconditional"):
        model(x, t, torch.zeros(3, dtype=torch.long))


def test_cross_attention_and_in_context_use_the_label():
    for block in ("cross-attention", "in-context"):
        torch.manual_seed(0)
        model = create_model(TINY, block=block)
        torch.nn.init.normal_(model.final_layer.linear.weight, std=0.1)
        x, t, _ = inputs()
        a = model(x, t, torch.tensor([0, 1, 2]))
        b = model(x, t, torch.tensor([3, 3, 3]))
        assert not torch.allclose(a, b)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = create_model(TINY, class_dropout_prob=0.0)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t, y = inputs()
    y = y.clamp(max=4)
    model(x, t, y).pow(2).sum().backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    model(x, t, y).pow(2).sum().backward()
    for a, b in zip(ref, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, atol=1e-6)


def test_presets_and_bad_configs():
    with torch.device("meta"):
        xl = create_model("DiT-XL/2")
    assert (xl.config.depth, xl.config.hidden_size, xl.config.num_heads, xl.config.patch_size) == (28, 1152, 16, 2)
    assert create_model("dit-s-4", input_size=8).config.patch_size == 4
    with pytest.raises(DitkitError, match="unknown model"):
        create_model("DiT-M/2")
    with pytest.raises(DitkitError, match="not divisible by patch"):
        create_model("DiT-S/8", input_size=12)
    with pytest.raises(DitkitError, match="block must be"):
        DiTConfig(block="mode3")
    with pytest.raises(DitkitError, match="expects 8x8"):
        create_model(TINY)(torch.zeros(1, 3, 16, 16), torch.zeros(1), torch.zeros(1, dtype=torch.long))
    assert DiTConfig.from_dict(DiTConfig(**TINY).to_dict()) == DiTConfig(**TINY)


def test_position_table_is_2d_sincos():
    table = sincos_2d_position_embedding(8, 4)
    assert table.shape == (16, 8)
    # first half encodes the column, second half the row (the reference's meshgrid order)
    assert torch.equal(table[1, :4], table[5, :4]) and not torch.equal(table[1, 4:], table[5, 4:])
