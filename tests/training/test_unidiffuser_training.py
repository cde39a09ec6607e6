"""UniDiffuser training: the objective (independent per-sample timesteps, summed noise-prediction losses), a
tiny U-ViT learning through ditkit's training step, and both stages under ``ditkit train`` — the caption
decoder, then the U-ViT — whose checkpoints are UniDiffuser folders, with bit-exact resume (one process and
2-process torchrun) and bad input as one line. The flow-matching variant: tests/diffusion/test_unidiffuser_flow.py."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ditkit.diffusion import DiffusionConfig
from ditkit.diffusion.vp_schedule import DiscreteVPSchedule
from ditkit.errors import DitkitError
from ditkit.models.uvit import UViT, UViTConfig
from ditkit.training import StepSettings, TrainConfig, TrainState, train, train_step
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


DECODER = dict(model="caption-decoder", model_overrides=dict(hidden_size=32, depth=1, num_heads=2))
UVIT = dict(model="uvit-tiny", model_overrides=dict(hidden_size=32, depth=2, num_heads=2, patch_size=4))


def config(out, **kw):
    base = dict(data="shapes", image_size=16, text_encoder="chars", max_steps=4, global_batch_size=4, ckpt_every=4,
                log_every=1, sample_every=0, seed=3, progress=False, ema_decay=0.9, threads=1, precision="fp32",
                out=str(out), **UVIT)
    base.update(kw)
    return TrainConfig(**base)


def weights(ckpt):
    return load_file(os.path.join(ckpt, "train_model.safetensors")), load_file(os.path.join(ckpt, "model.safetensors"))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def decoder_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("decoder")
    return train(config(out, max_steps=3, ckpt_every=3, lr=3e-3, **DECODER))["checkpoint"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_uvit_resume_is_bit_identical(tmp_path, decoder_ckpt, precision):
    kw = dict(precision=precision, init_from=decoder_ckpt)
    straight = train(config(tmp_path / "a", **kw))
    train(config(tmp_path / "b", max_steps=2, ckpt_every=2, **kw))
    resumed = train(config(tmp_path / "b", resume="latest", precision=precision))  # the decoder comes back too
    assert straight["step"] == resumed["step"] == 4
    raw_a, ema_a = weights(straight["checkpoint"])
    raw_b, ema_b = weights(resumed["checkpoint"])
    assert_same(raw_a, raw_b)
    assert_same(ema_a, ema_b)
    la = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    lb = [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    assert {"mse_img", "mse_clip_img", "mse_text"} <= set(la[0])  # the three modalities are logged
    # the U-ViT trained; the frozen caption decoder is the stage-1 checkpoint's, untouched
    decoder = load_file(os.path.join(decoder_ckpt, "model.safetensors"))
    assert all(torch.equal(raw_a[f"caption_decoder.{k}"], v) for k, v in decoder.items())
    first = train(config(tmp_path / "c", max_steps=1, ckpt_every=1, **kw))
    assert not torch.equal(weights(first["checkpoint"])[0]["uvit.pos_embed"], raw_a["uvit.pos_embed"])


def test_grad_checkpointing_reaches_the_uvit_and_changes_no_number(tmp_path, decoder_ckpt):
    plain = train(config(tmp_path / "a", max_steps=2, ckpt_every=2, init_from=decoder_ckpt))
    recomputed = train(config(tmp_path / "b", max_steps=2, ckpt_every=2, init_from=decoder_ckpt,
                              grad_checkpointing=True))
    for a, b in zip(weights(plain["checkpoint"]), weights(recomputed["checkpoint"])):
        assert_same(a, b)
    from ditkit.training.unidiffuser_run import UViTTrainNet
    from ditkit.models.uvit import UViT, UViTConfig
    from torch import nn

    net = UViTTrainNet(UViT(UViTConfig(img_size=4, embed_dim=32, depth=2, num_heads=2, num_text_tokens=4,
                                       clip_img_dim=4)), nn.Linear(2, 2))
    net.gradient_checkpointing = True
    assert net.uvit.gradient_checkpointing and not any(p.requires_grad for p in net.caption_decoder.parameters())


def test_caption_decoder_resume_is_bit_identical(tmp_path):
    straight = train(config(tmp_path / "a", **DECODER))
    train(config(tmp_path / "b", max_steps=2, ckpt_every=2, **DECODER))
    resumed = train(config(tmp_path / "b", resume="latest", **DECODER))
    for a, b in zip(weights(straight["checkpoint"]), weights(resumed["checkpoint"])):
        assert_same(a, b)


def test_checkpoint_is_a_unidiffuser_folder_for_ditkit_uni(tmp_path, decoder_ckpt):
    from ditkit.cli import main
    from ditkit.pipelines.unidiffuser import UniDiffuser

    run = train(config(tmp_path / "run", max_steps=2, ckpt_every=2, sample_every=2, sample_count=2, sample_steps=2,
                       init_from=decoder_ckpt))
    ckpt = run["checkpoint"]
    model = UniDiffuser.load(ckpt)
    ema = load_file(os.path.join(ckpt, "model.safetensors"))
    assert all(torch.equal(model.uvit.state_dict()[k], ema[f"uvit.{k}"]) for k in model.uvit.state_dict())
    saved = json.load(open(os.path.join(ckpt, "config.json")))
    assert saved["extra"]["training_step"] == 2 and saved["extra"]["weights"] == "ema"
    assert saved["text_encoder"]["spec"] == "chars" and saved["uvit"]["embed_dim"] == 32
    assert os.path.isfile(tmp_path / "run" / "samples" / "step-0000002.png")  # the captioned t2i progress grid
    assert main(["uni", "i2t", "--image", str(tmp_path / "run" / "samples" / "step-0000002.png"), "--steps", "2",
                 "--checkpoint", ckpt, "--out", str(tmp_path / "uni")]) == 0
    assert (tmp_path / "uni" / "captions.txt").is_file()


def test_decoder_progress_lists_reconstructed_captions(tmp_path):
    train(config(tmp_path / "d", max_steps=2, ckpt_every=2, sample_every=2, sample_count=3, **DECODER))
    lines = (tmp_path / "d" / "samples" / "step-0000002.txt").read_text().splitlines()
    assert len(lines) == 3 and all("\t→\t" in line for line in lines)


def test_periodic_evaluation_of_each_stage(tmp_path, decoder_ckpt):
    """--fid-every: the U-ViT logs uni-eval's scores of its EMA (the same numbers uni-eval gives the saved
    checkpoint), the caption decoder its caption reconstruction."""
    from ditkit.evaluation.unidiffuser_eval import evaluate_unidiffuser
    from ditkit.pipelines.unidiffuser import UniDiffuser

    run = train(config(tmp_path / "u", init_from=decoder_ckpt, fid_every=2, fid_samples=2))
    logged = [r["eval"] for r in map(json.loads, open(tmp_path / "u" / "metrics.jsonl")) if "eval" in r][1:]
    plain = train(config(tmp_path / "p", init_from=decoder_ckpt))  # evaluating changes no trained number
    for a, b in zip(weights(run["checkpoint"]), weights(plain["checkpoint"])):
        assert_same(a, b)
    report = evaluate_unidiffuser(UniDiffuser.load(run["checkpoint"]), count=2, seed=3)
    assert len(logged) == 1 and logged[0] == {
        "uni_t2i_mean_attribute": report["t2i"]["all"]["mean_attribute"],
        "uni_t2i_min_attribute": report["t2i"]["all"]["min_attribute"],
        "uni_t2i_all_correct": report["t2i"]["all"]["all_correct"],
        "uni_i2t_mean_attribute": report["i2t"]["all"]["mean_attribute"],
        "uni_i2t_min_attribute": report["i2t"]["all"]["min_attribute"],
        "uni_i2t_all_correct": report["i2t"]["all"]["all_correct"],
        "uni_joint_agreement": report["joint"]["all"]["agreement"]}

    train(config(tmp_path / "d", max_steps=40, ckpt_every=40, fid_every=20, fid_samples=6, lr=1e-2, **DECODER))
    logged = [r["eval"] for r in map(json.loads, open(tmp_path / "d" / "metrics.jsonl")) if "eval" in r]
    assert [sorted(e) for e in logged] == [["decoder_exact", "decoder_nats"]] * 2
    assert all(0.0 <= e["decoder_exact"] <= 1.0 for e in logged)
    assert logged[1]["decoder_nats"] < logged[0]["decoder_nats"]  # the EMA decoder learns the captions


def test_minilm_text_encoder_trains_both_stages(tmp_path):
    """The offline MiniLM encoder (the bundled path): 384-d states, 32 tokens, through both stages."""
    dec = train(config(tmp_path / "dec", text_encoder="minilm", max_steps=1, ckpt_every=1, **DECODER))
    run = train(config(tmp_path / "uvit", text_encoder="minilm", max_steps=1, ckpt_every=1,
                       init_from=dec["checkpoint"]))
    saved = json.load(open(os.path.join(run["checkpoint"], "config.json")))
    assert saved["text_encoder"]["spec"] == "minilm" and saved["uvit"]["num_text_tokens"] == 32
    assert saved["caption_decoder"]["text_width"] == 384


@pytest.mark.parametrize("case, message", [
    ("not-a-decoder", "not a caption-decoder checkpoint"),
    ("other-encoder", "trained on the chars text encoder, this run uses minilm"),
    ("dit-flag", "--block does not apply to a U-ViT model"),
    ("preset", "unknown U-ViT preset 'uvit-huge'"),
    ("fsdp", "--fsdp does not support UniDiffuser runs"),
    ("weighting", "--loss-weighting does not apply to a uvit-tiny run"),
    ("schedule", "--noise-schedule does not apply to a caption-decoder run"),
    ("eval-data", "--fid-every scores a UniDiffuser run with the shapes attribute classifier"),
])
def test_bad_input_is_one_clear_error(tmp_path, decoder_ckpt, case, message):
    kw = {"not-a-decoder": dict(init_from=str(tmp_path)),
          "other-encoder": dict(init_from=decoder_ckpt, text_encoder="minilm"),
          "dit-flag": dict(model_overrides=dict(block="adaln")),
          "preset": dict(model="uvit-huge"), "fsdp": dict(fsdp=True),
          "weighting": dict(diffusion=DiffusionConfig(loss_weighting="p2")),
          "schedule": dict(diffusion=DiffusionConfig(noise_schedule="cosine"), **DECODER),
          "eval-data": dict(data="mnist", fid_every=2)}[case]
    with pytest.raises(DitkitError, match=message):
        train(config(tmp_path / "x", **kw))
    assert not os.path.isdir(tmp_path / "x" / "checkpoints")


def test_resume_with_another_model_is_refused(tmp_path, decoder_ckpt):
    train(config(tmp_path / "r", max_steps=1, ckpt_every=1, init_from=decoder_ckpt))
    with pytest.raises(DitkitError, match="cannot resume: the model differs from the checkpoint's in uvit"):
        train(config(tmp_path / "r", resume="latest", init_from=decoder_ckpt,
                     model_overrides=dict(UVIT["model_overrides"], hidden_size=64)))


def _torchrun(args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ditkit",
           "train", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_process_torchrun_resumes_exactly(tmp_path, decoder_ckpt):
    def flags(out, steps, every):
        return ["--data", "shapes", "--image-size", "16", "--model", "uvit-tiny", "--text-encoder", "chars",
                "--hidden-size", "32", "--depth", "2", "--num-heads", "2", "--patch-size", "4", "--init-from",
                decoder_ckpt, "--max-steps", str(steps), "--global-batch-size", "4", "--ckpt-every", str(every),
                "--sample-every", "0", "--ema-decay", "0.9", "--seed", "5", "--threads", "1", "--precision", "fp32",
                "--out", str(out), "--no-progress"]

    _torchrun(flags(tmp_path / "straight", 4, 100))
    _torchrun(flags(tmp_path / "split", 2, 2))
    _torchrun([*flags(tmp_path / "split", 4, 100), "--resume", "latest"])
    a = weights(tmp_path / "straight" / "checkpoints" / "step-0000004")
    b = weights(tmp_path / "split" / "checkpoints" / "step-0000004")
    for x, y in zip(a, b):
        assert_same(x, y)
    assert len(torch.load(tmp_path / "split/checkpoints/step-0000004/rng_states.pt", weights_only=True)) == 2


@pytest.mark.slow  # two stages trained and resumed with the text cache (~15 s)
def test_text_cache_encodes_every_caption_once_and_resumes_exactly(tmp_path, decoder_ckpt, capsys):
    from ditkit.pipelines.unidiffuser import UniDiffuser
    from ditkit.training.uni_text_table import NAME

    cache = str(tmp_path / "tokens")
    kw = dict(init_from=decoder_ckpt, text_cache=cache)
    straight = train(config(tmp_path / "a", **kw))
    assert "distinct captions once" in capsys.readouterr().err
    train(config(tmp_path / "b", max_steps=2, ckpt_every=2, **kw))
    resumed = train(config(tmp_path / "b", resume="latest", text_cache=cache))
    assert "distinct captions once" not in capsys.readouterr().err  # reused from the folder
    for a, b in zip(weights(straight["checkpoint"]), weights(resumed["checkpoint"])):
        assert_same(a, b)
    # the table holds what the model computes for a caption (encoder states through the frozen reduction)
    table = load_file(os.path.join(cache, NAME + ".safetensors"))["tokens"]
    captions = json.load(open(os.path.join(cache, NAME + ".json")))["captions"]
    model = UniDiffuser.load(straight["checkpoint"])
    torch.testing.assert_close(table[:5], model.encode_prompts(captions[:5]), rtol=0, atol=1e-6)


def test_an_untrained_caption_decoder_is_named_before_the_uvit_trains(tmp_path, decoder_ckpt, capsys):
    """Stage 2 from a decoder that cannot reconstruct the data's captions (3 steps of stage 1) says so once:
    the U-ViT would train, and every i2t caption would be noise."""
    train(config(tmp_path / "u", max_steps=1, ckpt_every=1, init_from=decoder_ckpt))
    err = capsys.readouterr().err
    assert err.count("reconstructs the data's captions poorly") == 1 and str(decoder_ckpt) in err
