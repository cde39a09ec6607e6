"""``DiTPipeline`` (load, generate(settings), save) and ``ditkit.load``: every kind of checkpoint opens as the
pipeline it is — a DiT folder, a text DiT, a UniDiffuser folder, a bundled name — and a pipeline saved and loaded
back draws the identical samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ditkit
from ditkit.checkpoints import save_pretrained
from ditkit.checkpoints.bundled import locate
from ditkit.errors import DitkitError
from ditkit.models import create_model
from ditkit.pipelines import DiTPipeline, SamplingSettings, generate, load_codec, load_for_sampling
from ditkit.pipelines.unidiffuser import UniDiffuser

TINY = dict(input_size=8, patch_size=4, in_channels=3, hidden_size=32, depth=2, num_heads=2, learn_sigma=True)
PIXELS = {"type": "pixel", "channels": 3}
RECORDED = {"sampler": "ddim", "steps": 3, "cfg_scale": 2.0}


def _trained_looking(model):
    """Leave adaLN-Zero's zero init behind, so the conditioning (and so guidance) changes the samples."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory):
    torch.manual_seed(0)
    model = _trained_looking(create_model(dict(TINY, num_classes=3, class_dropout_prob=0.1)))
    path = tmp_path_factory.mktemp("dit") / "model"
    save_pretrained(model, path, codec=PIXELS, class_names=["a", "b", "c"], diffusion={"diffusion_steps": 1000},
                    extra={"sampling": RECORDED, "note": "kept"})
    return path


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory, tiny_bert):
    from ditkit.codecs.text import make_text_codec

    text = make_text_codec(tiny_bert, max_length=8)
    torch.manual_seed(0)
    model = _trained_looking(create_model(dict(TINY, num_classes=0, block="cross-text", text_dim=text.width,
                                               text_len=text.max_length)))
    path = tmp_path_factory.mktemp("t2i") / "model"
    save_pretrained(model, path, codec=PIXELS, extra={"text_encoder": text.to_config()})
    return path


def test_load_a_dit_folder_keeps_what_the_checkpoint_says(dit_folder):
    pipe = ditkit.load(dit_folder)
    assert isinstance(pipe, DiTPipeline) and pipe.text_codec is None
    assert pipe.class_names == ["a", "b", "c"] and pipe.sampling == RECORDED and pipe.codec.to_config() == PIXELS
    out = pipe.generate(labels=[0, 2], seed=1, progress=False)
    assert out.images.shape == (2, 8, 8, 3) and out.labels == [0, 2]
    # no settings: the recorded sampling, the same samples as the hand-assembled pipeline
    loaded = load_for_sampling(dit_folder)
    by_hand = generate(loaded.model, labels=[0, 2], seed=1, sampler="ddim", steps=3, cfg_scale=2.0,
                       codec=load_codec(loaded, None), diffusion_config=loaded.diffusion_config, progress=False)
    assert np.array_equal(out.images, by_hand.images) and torch.equal(out.latents, by_hand.latents)
    # explicit settings are taken as they are
    plain = pipe.generate(SamplingSettings(labels=(0, 2), seed=1, sampler="ddim", steps=3), progress=False)
    assert not torch.equal(plain.latents, out.latents)  # no guidance: cfg 1, not the recorded 2


def test_load_a_text_dit_brings_its_text_encoder(text_folder):
    pipe = ditkit.load(text_folder)
    assert isinstance(pipe, DiTPipeline) and pipe.text_codec is not None and pipe.text_codec.width == 16
    out = pipe.generate(prompts=["red", "blue"], sampler="ddim", steps=2, cfg_scale=2.0, progress=False)
    assert out.images.shape == (2, 8, 8, 3) and out.labels is None
    with pytest.raises(DitkitError, match="text-to-image|--prompt"):
        pipe.generate(labels=[1], progress=False)


def test_load_a_unidiffuser_folder_and_bundled_names(tmp_path):
    from ditkit.models.caption_decoder import build_vocab

    uni = UniDiffuser.build(image_size=8, image_channels=3, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                            text_encoder={"type": "text", "spec": "chars", "max_length": 12},
                            image_encoder="pooled:2", vocab=build_vocab(["a red circle"]),
                            decoder=dict(width=32, depth=1, heads=2), seed=0)
    uni.save(tmp_path / "uni")
    assert isinstance(ditkit.load(tmp_path / "uni"), UniDiffuser)
    assert isinstance(ditkit.load("mnist-uni"), UniDiffuser)
    bundled = ditkit.load("mnist-dit")
    assert isinstance(bundled, DiTPipeline) and bundled.checkpoint == str(locate("mnist-dit").resolve())
    assert isinstance(ditkit.load(None), DiTPipeline)  # the bundled default
    with pytest.raises(DitkitError, match="UniDiffuser"):
        ditkit.load(tmp_path / "uni", vae="none")


@pytest.mark.parametrize("kind", ["dit", "text"])
def test_save_then_load_draws_identical_samples(kind, dit_folder, text_folder, tmp_path):
    pipe = DiTPipeline.load(dit_folder if kind == "dit" else text_folder)
    request = dict(labels=[1, 2]) if kind == "dit" else dict(prompts=["red"], sampler="ddim", steps=2)
    before = pipe.generate(seed=3, progress=False, **request)
    again = DiTPipeline.load(pipe.save(tmp_path / "saved"))
    after = again.generate(seed=3, progress=False, **request)
    assert np.array_equal(before.images, after.images) and torch.equal(before.latents, after.latents)
    for name in ("class_names", "sampling", "diffusion_config", "codec_config", "text_encoder_config"):
        assert getattr(again, name) == getattr(pipe, name), name
    assert again.extra.get("note") == pipe.extra.get("note")
    assert again.model.config == pipe.model.config and type(again.model) is type(pipe.model)


def test_latents_only_with_vae_none(dit_folder):
    pipe = DiTPipeline.load(dit_folder, vae="none")
    out = pipe.generate(labels=[0], progress=False)
    assert pipe.codec is None and out.images is None and out.latents.shape == (1, 3, 8, 8)
