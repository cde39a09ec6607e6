"""UniDiffuser's objective: independent per-sample timesteps, summed noise-prediction losses, and a tiny
U-ViT that learns through ditkit's training step (AdamW, EMA)."""

import pytest
import torch

from ditkit.diffusion.vp_schedule import DiscreteVPSchedule
from ditkit.errors import DitkitError
from ditkit.models.uvit import UViT, UViTConfig
from ditkit.training import StepSettings, TrainState, train_step
from ditkit.training.ema import make_ema
from ditkit.training.unidiffuser_objective import UniDiffuserObjective

CONFIG = UViTConfig(img_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2, text_dim=8, num_text_tokens=6,
                    clip_img_dim=12)


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"img": torch.randn(n, 3, 4, 4, generator=g), "clip_img": torch.randn(n, 1, 12, generator=g),
            "text": torch.randn(n, 6, 8, generator=g)}


def test_objective_is_the_summed_noise_prediction_loss_at_independent_timesteps():
    torch.manual_seed(0)
    net, objective, batch = UViT(CONFIG).eval(), UniDiffuserObjective(), _batch()
    calls = []

    def spy(*args):
        calls.append(args)
        return net(*args)

    losses = objective(spy, batch, torch.Generator().manual_seed(3))
    t_img, t_text, eps = objective.draw(batch, torch.Generator().manual_seed(3))  # the same draws again
    img, clip, text, ti, tt, kind = calls[0]
    assert torch.equal(ti, t_img) and torch.equal(tt, t_text) and kind.tolist() == [1] * 8
    assert not torch.equal(t_img, t_text) and t_img.min() >= 1 and t_img.max() <= 1000
    # the noising agrees with the sampler's schedule: alpha(t/1000)^2 is the discrete alpha-bar
    alpha = DiscreteVPSchedule().marginal_alpha(t_img.float() / 1000)
    expected = alpha.view(-1, 1, 1, 1) * batch["img"] + (1 - alpha**2).sqrt().view(-1, 1, 1, 1) * eps["img"]
    torch.testing.assert_close(img, expected, atol=1e-5, rtol=0)
    preds = net(img, clip, text, ti, tt, kind)
    by_hand = sum(((p - eps[k]) ** 2).flatten(1).mean(1) for p, k in zip(preds, ("img", "clip_img", "text")))
    torch.testing.assert_close(losses["loss"], by_hand)
    assert losses["loss"].shape == (8,) and set(losses) == {"loss", "mse_img", "mse_clip_img", "mse_text"}


def test_tiny_uvit_learns_through_the_training_step():
    torch.manual_seed(0)
    model = UViT(CONFIG)
    state = TrainState(model=model, net=model, ema=make_ema(model),
                       optimizer=torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0))
    settings, objective, batch = StepSettings(device_type="cpu", ema_decay=0.9), UniDiffuserObjective(), _batch()
    evaluate = lambda: objective(model, batch, torch.Generator().manual_seed(99))["loss"].mean().item()  # noqa: E731
    before = evaluate()
    for _ in range(60):
        stats = train_step(state, objective, batch, settings)
    assert state.step == 60 and set(stats) >= {"loss", "mse_img", "mse_clip_img", "mse_text"}
    assert evaluate() < 0.8 * before
    assert not torch.equal(state.ema.pos_embed, model.pos_embed)  # the EMA follows, behind


def test_captioned_shapes_to_a_training_batch_and_steps():
    from ditkit.data.captions import ComposedShapesDataset
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    data = ComposedShapesDataset(image_size=16, split="train", length=8)
    images, captions = torch.stack([data[i]["x"] for i in range(8)]), [data.caption(i) for i in range(8)]
    uni = UniDiffuser.build(image_size=16, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8, patch_size=4),
                            text_encoder={"type": "text", "spec": "chars", "max_length": 24}, image_encoder="pooled:2",
                            vocab=build_vocab(captions), decoder=dict(width=32, depth=1, heads=2))
    batch = uni.training_batch(images, captions, torch.Generator().manual_seed(0))
    assert {k: tuple(v.shape) for k, v in batch.items()} == {"img": (8, 3, 16, 16), "clip_img": (8, 1, 12),
                                                             "text": (8, 24, 8)}
    assert not batch["text"].requires_grad  # the reduction is frozen while the U-ViT trains
    net = uni.uvit.train()
    state = TrainState(model=net, net=net, ema=make_ema(net),
                       optimizer=torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0))
    objective = UniDiffuserObjective()
    before = objective(net, batch, torch.Generator().manual_seed(1))["loss"].mean().item()
    for _ in range(30):
        train_step(state, objective, batch, StepSettings(device_type="cpu"))
    assert objective(net, batch, torch.Generator().manual_seed(1))["loss"].mean().item() < before
    with pytest.raises(DitkitError, match="8 images but 7 captions"):
        uni.training_batch(images, captions[:7])


def test_caption_decoder_trains_with_its_reduction_through_the_training_step():
    from ditkit.codecs.char_text import CharTextCodec
    from ditkit.models.caption_decoder import WordPrefixDecoder, build_vocab
    from ditkit.training.unidiffuser_objective import CaptionDecoderObjective

    captions = ["a large red circle in the top left", "a small blue star left of a large green square",
                "there is a small white cross at the top", "a small red square on the right"]
    torch.manual_seed(0)
    text = CharTextCodec(max_length=48)
    decoder = WordPrefixDecoder(build_vocab(captions), text_width=text.width, text_dim=8, width=32, depth=2, heads=2)
    batch = {"states": text.encode(captions).states, "ids": decoder.ids_of(captions, 16)}
    state = TrainState(model=decoder, net=decoder, ema=make_ema(decoder),
                       optimizer=torch.optim.AdamW(decoder.parameters(), lr=1e-2, weight_decay=0))
    for _ in range(120):
        stats = train_step(state, CaptionDecoderObjective(), batch, StepSettings(device_type="cpu"))
    assert stats["loss"].item() < 0.05
    latents = decoder.encode_prefix(batch["states"])  # what the U-ViT's text tokens will be
    assert decoder.eval().generate(latents) == captions
