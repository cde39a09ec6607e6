"""U-ViT (UniDiffuser v1 backbone): parity with the official network's golden outputs, the real v1 key/shape
set on the meta device, config inference, clear errors for mismatched state dicts, Gflops."""

import json

import pytest
import torch

from ditkit.errors import DitkitError
from ditkit.models.uvit import (UVIT_V1, UViT, UViTConfig, infer_uvit_config, load_uvit_state_dict, uvit_flops,
                                uvit_param_count)

from tests.conftest import fixture_path

FIXTURES = fixture_path("reference-unidiffuser")


def _tiny_config() -> UViTConfig:
    return UViTConfig.from_dict(json.loads((FIXTURES / "tiny_uvit_config.json").read_text())["nnet"])


def _tiny_model() -> UViT:
    state = torch.load(FIXTURES / "tiny_uvit_state_dict.pt", weights_only=True)
    return load_uvit_state_dict(UViT(_tiny_config()), state).eval()


@pytest.mark.parametrize("case", ["forward", "forward_interp"])
def test_forward_matches_official(case):
    expected = torch.load(FIXTURES / "tiny_uvit_expected.pt", weights_only=True)[case]
    model = _tiny_model()
    inputs = [expected[k] for k in ("img", "clip_img", "text", "t_img", "t_text", "data_type")]
    with torch.no_grad():
        tokens_in = model.embed(*inputs)
        tokens_out = model.blocks(tokens_in)
        outputs = model(*inputs)
    assert tokens_in.shape == expected["tokens_in"].shape  # 97 tokens, or 117 for the 12x12 latent
    torch.testing.assert_close(tokens_in, expected["tokens_in"], atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens_out, expected["tokens_out"], atol=1e-5, rtol=0)
    for out, key in zip(outputs, ("img_out", "clip_img_out", "text_out")):
        assert out.shape == expected[key].shape
        torch.testing.assert_close(out, expected[key], atol=1e-5, rtol=0)


def test_real_v1_key_and_shape_set_is_exact():
    official = json.loads((FIXTURES / "official_v1_state_dict_shapes.json").read_text())
    shapes = {k: v for k, v in official["state_dict"].items() if not k.startswith("#")}
    config = UViTConfig.from_dict(official["config"])
    assert config == UVIT_V1
    with torch.device("meta"):
        model = UViT(config)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == shapes
    assert len(ours) == 418
    assert uvit_param_count(config) == official["state_dict"]["#params"] == 952_509_520
    # Config inference from the shapes alone gives the published config back (heads: embed_dim / 64).
    meta_state = model.state_dict()
    assert infer_uvit_config(meta_state) == UVIT_V1
    assert UVIT_V1.num_tokens == 1105


def test_config_inferred_from_tiny_state_dict():
    state = torch.load(FIXTURES / "tiny_uvit_state_dict.pt", weights_only=True)
    assert infer_uvit_config(state, num_heads=4) == _tiny_config()


def test_wrong_shape_state_dict_is_one_clear_error():
    small = UViTConfig(img_size=4, embed_dim=32, depth=2, num_heads=2, clip_img_dim=16, num_text_tokens=5)
    state = UViT(small).state_dict()
    with pytest.raises(DitkitError, match="wrong shape"):
        load_uvit_state_dict(UViT(UViTConfig(**{**small.to_dict(), "embed_dim": 48, "num_heads": 3})), state)
    state.pop("norm.weight")
    with pytest.raises(DitkitError, match="missing: norm.weight"):
        load_uvit_state_dict(UViT(small), state)
    with pytest.raises(DitkitError, match="no 'patch_embed.proj.weight'"):
        infer_uvit_config({"pos_embed": torch.zeros(1, 10, 8)})
    with pytest.raises(DitkitError, match="square latent"):
        UViT(small)(torch.zeros(1, 4, 4, 6), torch.zeros(1, 1, 16), torch.zeros(1, 5, 64), torch.zeros(1),
                    torch.zeros(1), torch.ones(1, dtype=torch.long))
    with pytest.raises(DitkitError, match="mlp_time_embed"):
        UViTConfig.from_dict({**small.to_dict(), "mlp_time_embed": True})


def test_tiny_flops_match_a_hand_count():
    c = UViTConfig(img_size=8, embed_dim=64, depth=4, num_heads=4)  # 16 patches, 97 tokens
    d, tokens, patches, text = 64, 97, 16, 77
    embed = patches * (4 * 2 * 2) * d + text * 64 * d + 512 * d
    block = tokens * d * d * (3 + 1 + 2 * 4) + 2 * tokens * tokens * d  # qkv, proj, mlp; QK^T and AV
    skips = 2 * tokens * (2 * d) * d
    heads = patches * d * 16 + d * 512 + text * d * 64
    assert uvit_flops(c) == embed + 5 * block + skips + heads
    # A 12x12 latent: 36 patches, 117 tokens — more work, same weights.
    assert uvit_flops(c, latent_size=12) > uvit_flops(c)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    c = UViTConfig(img_size=4, embed_dim=32, depth=2, num_heads=2, clip_img_dim=16, num_text_tokens=5, text_dim=8)
    model = UViT(c).train()
    inputs = (torch.randn(2, 4, 4, 4), torch.randn(2, 1, 16), torch.randn(2, 5, 8), torch.tensor([3.0, 900.0]),
              torch.tensor([0, 1000]), torch.tensor([1, 1]))
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.gradient_checkpointing = flag
        sum(o.square().sum() for o in model(*inputs)).backward()
        grads.append(model.pos_embed.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_v1_gflops():
    # 1105 tokens of width 1536 through 31 blocks (+ 15 skip fusions), embeddings and heads: 1164.37 GMACs
    assert round(uvit_flops(UVIT_V1) / 1e9, 2) == 1164.37
