"""The UniDiffuser pipeline on a tiny randomly initialised model: every mode, save/load, seeds, bad input, the
official-file loaders (on the fixture's tiny U-ViT and a tiny GPT-2 caption decoder) and the word decoder."""

import json

import pytest
import torch

from ditkit.checkpoints.unidiffuser import load_official_uvit, read_caption_decoder_state
from ditkit.errors import DitkitError
from ditkit.models.caption_decoder import WordPrefixDecoder, build_vocab
from ditkit.pipelines.unidiffuser import UniDiffuser

from tests.conftest import fixture_path

FIXTURES = fixture_path("reference-unidiffuser")
CAPTIONS = ["a large red circle in the top left", "a small blue star left of a large green square",
            "there is a small white cross at the top"]


def tiny(image_size=8, channels=3) -> UniDiffuser:
    return UniDiffuser.build(
        image_size=image_size, image_channels=channels, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
        text_encoder={"type": "text", "spec": "chars", "max_length": 12}, image_encoder="pooled:2",
        vocab=build_vocab(CAPTIONS), decoder=dict(width=32, depth=1, heads=2), seed=0).eval()


@pytest.fixture(scope="module")
def model():
    return tiny()


@pytest.mark.parametrize("mode,inputs,makes", [
    ("t2i", {"prompts": "a red circle"}, "images"),
    ("i2t", {"images": torch.zeros(1, 3, 8, 8)}, "captions"),
    ("joint", {}, "both"),
    ("i", {}, "images"),
    ("t", {}, "captions"),
    ("i2t2i", {"images": torch.zeros(1, 3, 8, 8)}, "images"),
    ("t2i2t", {"prompts": "a red circle"}, "captions"),
])
def test_every_mode_produces_its_outputs_reproducibly(model, mode, inputs, makes):
    first = model.generate(mode, n=2, steps=3, seed=5, **inputs)
    again = model.generate(mode, n=2, steps=3, seed=5, **inputs)
    other = model.generate(mode, n=2, steps=3, seed=6, **inputs)
    if makes in ("images", "both"):
        assert first.images.shape == (2, 3, 8, 8) and first.images.abs().max() <= 1
        torch.testing.assert_close(first.images, again.images, atol=0, rtol=0)
        assert not torch.equal(first.images, other.images)
    else:
        assert first.images is None
    if makes in ("captions", "both"):
        assert len(first.captions) == 2 and all(isinstance(c, str) for c in first.captions)
        assert first.captions == again.captions
        torch.testing.assert_close(first.latents["text"], again.latents["text"], atol=0, rtol=0)
    else:
        assert first.captions is None


def test_save_and_load_round_trip(model, tmp_path):
    model.save(tmp_path / "uni", extra={"note": "test"})
    config = json.loads((tmp_path / "uni" / "config.json").read_text())
    assert config["format"] == "ditkit-unidiffuser" and config["ditkit_version"] and config["extra"] == {"note": "test"}
    loaded = UniDiffuser.load(tmp_path / "uni")
    a = model.generate("joint", n=2, steps=3, seed=1)
    b = loaded.generate("joint", n=2, steps=3, seed=1)
    torch.testing.assert_close(a.images, b.images, atol=0, rtol=0)
    assert a.captions == b.captions
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("user data")
    with pytest.raises(DitkitError, match="not overwritten"):
        model.save(tmp_path / "other")
    assert (tmp_path / "other" / "mine.txt").read_text() == "user data"
    with pytest.raises(DitkitError, match="not a ditkit UniDiffuser checkpoint"):
        UniDiffuser.load(tmp_path / "other")


def test_images_of_another_size_or_channel_count(model):
    grey = model.generate("i2t", images=torch.zeros(1, 1, 10, 14), n=1, steps=2)
    assert grey.notes == ["converted 1 image(s) to 3 channel(s)", "resized 10x14 input image(s) to 8x8"]
    assert model.generate("i2t", images=torch.zeros(1, 3, 8, 8), steps=2).notes == []
    with pytest.raises(DitkitError, match="2 channels cannot be converted"):
        model.generate("i2t", images=torch.zeros(1, 2, 8, 8), steps=2)


def test_modes_without_their_inputs_are_clear_errors(model):
    with pytest.raises(DitkitError, match="mode t2i needs prompts"):
        model.generate("t2i", n=1)
    with pytest.raises(DitkitError, match="mode i2t2i needs images"):
        model.generate("i2t2i", prompts="a red circle")
    with pytest.raises(DitkitError, match="mode joint takes no prompts"):
        model.generate("joint", n=1, prompts="x")
    with pytest.raises(DitkitError, match="needs a number of samples"):
        model.generate("i")
    with pytest.raises(DitkitError, match="unknown UniDiffuser mode"):
        model.generate("v2v", n=1)


def test_parts_that_do_not_fit_are_one_error():
    good = tiny()
    with pytest.raises(DitkitError, match="do not fit together: the text encoder gives 10 tokens, the U-ViT takes 12"):
        UniDiffuser(good.uvit, good.caption_decoder, codec=good.codec,
                    text_encoder=type(good.text_encoder)(max_length=10), image_encoder=good.image_encoder,
                    image_size=8)


def test_official_uvit_file_loads_with_inferred_config_and_wrong_shapes_fail(tmp_path):
    path = FIXTURES / "tiny_uvit_state_dict.pt"  # the official key layout, like uvit_v1.pth
    net = load_official_uvit(path, num_heads=4)
    expected = torch.load(FIXTURES / "tiny_uvit_expected.pt", weights_only=True)["forward"]
    with torch.no_grad():
        out = net(*[expected[k] for k in ("img", "clip_img", "text", "t_img", "t_text", "data_type")])
    torch.testing.assert_close(out[0], expected["img_out"], atol=1e-5, rtol=0)
    state = torch.load(path, weights_only=True)
    state["text_embed.weight"] = torch.zeros(64, 32)  # another text width than the rest of the file
    torch.save(state, tmp_path / "bad.pth")
    # text_dim is read off text_embed (32), so the file's own text_out (64-d) is what does not fit
    with pytest.raises(DitkitError, match=r"does not fit a U-ViT .*wrong shape: text_out.weight \(64, 64\) vs"):
        load_official_uvit(tmp_path / "bad.pth", num_heads=4)
    with pytest.raises(DitkitError, match="does not fit a U-ViT"):
        load_official_uvit(path, config={**net.config.to_dict(), "depth": 6})
    torch.save({"not": "tensors"}, tmp_path / "junk.pth")
    with pytest.raises(DitkitError, match="not a U-ViT checkpoint"):
        load_official_uvit(tmp_path / "junk.pth")


def test_official_caption_decoder_loads_safely_and_checks_its_prefix_width(tmp_path):
    transformers = pytest.importorskip("transformers")
    from ditkit.models.caption_decoder import GPT2PrefixDecoder

    gpt = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=40, n_positions=32, n_embd=64, n_layer=1,
                                                               n_head=1))
    state = {f"gpt.{k}": v for k, v in gpt.state_dict().items()}
    state.update({"encode_prefix.weight": torch.randn(8, 24), "encode_prefix.bias": torch.zeros(8),
                  "decode_prefix.weight": torch.randn(64, 8), "decode_prefix.bias": torch.zeros(64)})
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "caption_decoder.pth")
    loaded = read_caption_decoder_state(tmp_path / "caption_decoder.pth", text_dim=8)
    decoder = GPT2PrefixDecoder({k: tuple(v.shape) for k, v in loaded.items()}, tokenizer=_DigitsTokenizer())
    decoder.load_state_dict(loaded, strict=True)
    captions = decoder.eval().generate(torch.randn(2, 5, 8), beam_size=3, max_tokens=4)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    with pytest.raises(DitkitError, match="prefix width 8, but the U-ViT's text tokens are 64-d"):
        read_caption_decoder_state(tmp_path / "caption_decoder.pth", text_dim=64)


class _DigitsTokenizer:
    """Stands in for the GPT-2 tokenizer (a hub download): token i is the word 'w<i>'."""

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


def test_word_decoder_learns_its_captions():
    torch.manual_seed(0)
    decoder = WordPrefixDecoder(build_vocab(CAPTIONS), text_width=16, text_dim=8, width=32, depth=2, heads=2)
    latents = torch.randn(3, 5, 8)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    first = decoder.loss(latents, CAPTIONS).item()
    for _ in range(150):
        loss = decoder.loss(latents, CAPTIONS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 * first
    assert decoder.eval().generate(latents) == CAPTIONS
    with pytest.raises(DitkitError, match=r"takes text latents \(B, T, 8\)"):
        decoder.generate(torch.randn(1, 5, 7))


def test_batch_size_draws_in_passes_of_their_own_seed(model):
    whole = model.generate("joint", n=3, steps=3, seed=5)
    assert torch.equal(whole.images, model.generate("joint", n=3, steps=3, seed=5, batch_size=3).images)
    split = model.generate("joint", n=3, steps=3, seed=5, batch_size=2)
    first, second = (model.generate("joint", n=2, steps=3, seed=5), model.generate("joint", n=1, steps=3, seed=6))
    torch.testing.assert_close(split.images, torch.cat([first.images, second.images]), atol=0, rtol=0)
    assert split.captions == first.captions + second.captions
    prompts = model.generate("t2i", prompts=["a red circle", "a blue star"], n=2, steps=3, seed=5, batch_size=3)
    assert prompts.images.shape[0] == 4  # each prompt twice, in order, over two passes
    with pytest.raises(DitkitError, match="batch size"):
        model.generate("joint", n=2, steps=3, batch_size=0)


def test_bf16_runs_the_uvit_under_autocast_and_keeps_the_sampler_in_fp32(model):
    fp32 = model.generate("t2i", prompts="a red circle", n=2, steps=3, seed=5)
    bf16 = model.generate("t2i", prompts="a red circle", n=2, steps=3, seed=5, precision="bf16")
    again = model.generate("t2i", prompts="a red circle", n=2, steps=3, seed=5, precision="bf16")
    assert bf16.latents["img"].dtype == torch.float32 and torch.equal(bf16.images, again.images)
    assert not torch.equal(bf16.latents["img"], fp32.latents["img"])  # the network's arithmetic changed ...
    torch.testing.assert_close(bf16.latents["img"], fp32.latents["img"], atol=0.1, rtol=0.05)  # ... only slightly
    with pytest.raises(DitkitError, match="precision 'fp16'"):
        model.generate("t2i", prompts="a red circle", steps=3, precision="fp16")
