"""Text-to-image end to end through the CLI: ``ditkit train --text-encoder``, ``ditkit sample --prompt``,
guidance with the null text or a negative prompt, and the bad inputs (non-UTF-8 prompts file, a text
checkpoint given classes and a class checkpoint given prompts)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ditkit.cli import main
from ditkit.codecs.text import TextCodec
from ditkit.models import create_model
from ditkit.pipelines import generate


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_bert):
    out = tmp_path_factory.mktemp("t2i") / "run"
    code = main(["train", "--data", "shapes", "--text-encoder", tiny_bert, "--model", "DiT-S/4", "--depth", "2",
                 "--hidden-size", "32", "--num-heads", "2", "--image-size", "16", "--max-steps", "20",
                 "--global-batch-size", "8", "--lr", "3e-3", "--ema-decay", "0", "--ckpt-every", "20", "--sample-every", "20",
                 "--sample-count", "4", "--sample-steps", "3", "--log-every", "10", "--out", str(out),
                 "--text-cache", str(out.parent / "text-cache"), "--no-progress"])
    assert code == 0
    return out


def test_train_writes_a_text_model_with_its_encoder(text_run):
    config = json.loads((text_run / "checkpoints" / "step-0000020" / "config.json").read_text())
    model = config["model"]
    assert model["block"] == "cross-text" and model["num_classes"] == 0
    assert model["text_dim"] == 16 and model["text_len"] == 32
    assert config["extra"]["text_encoder"]["width"] == 16
    losses = [json.loads(line)["loss"] for line in (text_run / "metrics.jsonl").read_text().splitlines()
              if "loss" in line]
    assert len(losses) == 2 and all(np.isfinite(losses))
    grid = Image.open(text_run / "samples" / "step-0000020.png")
    assert grid.size[0] > 4 * 16 * 4  # four captioned tiles, enlarged
    cache = json.loads((text_run.parent / "text-cache" / "cache.json").read_text())
    assert 20 <= len(cache["captions"]) <= 20 * 8  # each distinct caption of 20 batches of 8, once


def test_sample_with_prompts_negative_prompt_and_a_prompts_file(text_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a large red circle in the top left\n\na small blue star at the bottom\n", encoding="utf-8")
    out = tmp_path / "samples"
    args = ["sample", "--checkpoint", str(text_run / "checkpoints" / "step-0000020"), "--prompts-file",
            str(prompts), "--prompt", "", "--cfg-scale", "3", "--sampler", "ddim", "--steps", "4", "--out", str(out)]
    assert main(args + ["--negative-prompt", "a green square"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["prompts"] == ["", "a large red circle in the top left", "a small blue star at the bottom"]
    assert sorted(os.listdir(out / "samples")) == ["000000.png", "000001.png", "000002.png"]
    with_negative = np.asarray(Image.open(out / "samples" / "000001.png"))
    assert Image.open(out / "grid.png").size[1] > 16 * 4  # tiles enlarged, captions under them
    assert main([a if a != str(out) else str(tmp_path / "plain") for a in args]) == 0
    plain = np.asarray(Image.open(tmp_path / "plain" / "samples" / "000001.png"))
    assert not np.array_equal(plain, with_negative)  # the negative prompt changed the guidance


def test_text_and_label_checkpoints_refuse_the_other_conditioning(text_run, tmp_path, capsys):
    ckpt = str(text_run / "checkpoints" / "step-0000020")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    cases = [
        (["--checkpoint", ckpt, "--prompts-file", str(bad)], "is not UTF-8 text"),
        (["--checkpoint", ckpt, "--classes", "1,2"], "text-to-image model: give --prompt"),
        (["--checkpoint", "shapes-dit", "--prompt", "a red circle"], "class-conditional model without a text encoder"),
    ]
    for extra, message in cases:
        out = tmp_path / "never"
        assert main(["sample", *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
        assert not out.exists()


def test_guidance_uses_the_null_text_or_the_negative_prompt(tiny_bert):
    codec = TextCodec(tiny_bert, max_length=8)
    torch.manual_seed(0)
    model = create_model(dict(input_size=8, patch_size=4, in_channels=3, hidden_size=32, depth=1, num_heads=2,
                              num_classes=0, block="cross-text", text_dim=16, text_len=8))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    run = dict(prompts=["a red circle", "a blue star"], sampler="ddim", steps=3, text_codec=codec, progress=False)
    unguided = generate(model, cfg_scale=1.0, **run).latents
    null = generate(model, prompts=[""] * 2, sampler="ddim", steps=3, text_codec=codec, progress=False).latents
    # scale 0 keeps only the unconditional half: the null text's samples (the same noise per index)
    assert torch.allclose(generate(model, cfg_scale=0.0, **run).latents, null, atol=1e-5)
    negative = generate(model, prompts=["a green square"] * 2, sampler="ddim", steps=3, text_codec=codec,
                        progress=False).latents
    assert torch.allclose(generate(model, cfg_scale=0.0, negative_prompt="a green square", **run).latents,
                          negative, atol=1e-5)
    assert not torch.allclose(generate(model, cfg_scale=4.0, **run).latents, unguided, atol=1e-3)


def test_attribute_evaluation_of_a_text_checkpoint(text_run, tmp_path):
    report_path = tmp_path / "report.json"
    assert main(["t2i-eval", "--checkpoint", str(text_run / "checkpoints" / "step-0000020"), "--num-seen", "4",
                 "--num-held-out", "2", "--steps", "2", "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["seen"]["count_prompts"] == 4 and report["held_out"]["count_prompts"] == 2
    assert 0.0 <= report["all"]["all_correct"] <= 1.0
    rows = report["prompts"]  # per prompt: the summary is their tally
    assert [r["held_out"] for r in rows] == [False] * 4 + [True] * 2 and all(r["prompt"] for r in rows)
    assert sum(not r["wrong"] for r in rows) / 6 == pytest.approx(report["all"]["all_correct"])
    for key in ("count", "shape", "colour", "size", "position", "relation"):
        right, wrong = (sum(key in r[side] for r in rows) for side in ("right", "wrong"))
        assert report["all"][key] == (pytest.approx(right / (right + wrong)) if right + wrong else None), key
    assert main(["t2i-eval", "--checkpoint", "shapes-dit", "--num-seen", "1", "--num-held-out", "0"]) == 2
    assert main(["t2i-eval", "--checkpoint", str(text_run / "checkpoints" / "step-0000020"), "--num-seen", "0",
                 "--num-held-out", "0"]) == 2


def test_periodic_evaluation_of_a_text_run_is_t2i_eval(tiny_bert, tmp_path):
    """--fid-every on the captioned shapes logs t2i-eval's attribute accuracy of the EMA: the same numbers
    ``ditkit t2i-eval`` gives the checkpoint saved at that step (same prompts, seed and settings)."""
    from ditkit.evaluation.text_to_image import evaluate_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--data", "shapes", "--text-encoder", tiny_bert, "--model", "DiT-S/4", "--depth", "1",
                 "--hidden-size", "32", "--num-heads", "2", "--image-size", "16", "--max-steps", "4",
                 "--global-batch-size", "4", "--ckpt-every", "4", "--sample-every", "0", "--fid-every", "2",
                 "--fid-samples", "6", "--seed", "2", "--out", str(out), "--no-progress"]) == 0
    logged = [json.loads(line)["eval"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if '"eval"' in line][1:]  # step 4's (step 2's came first)
    report = evaluate_checkpoint(str(out / "checkpoints" / "step-0000004"), num_seen=6, num_held_out=3, seed=2,
                                 progress=False)
    expected = {f"t2i_{k}": v for k, v in report["seen"].items() if k != "count_prompts" and v is not None}
    expected["t2i_held_out_all_correct"] = report["held_out"]["all_correct"]
    assert len(logged) == 1 and logged[0] == expected and "t2i_all_correct" in expected
    plain = tmp_path / "plain"  # the same run without evaluating: every trained number is the same
    assert main(["train", "--data", "shapes", "--text-encoder", tiny_bert, "--model", "DiT-S/4", "--depth", "1",
                 "--hidden-size", "32", "--num-heads", "2", "--image-size", "16", "--max-steps", "4",
                 "--global-batch-size", "4", "--ckpt-every", "4", "--sample-every", "0", "--seed", "2",
                 "--out", str(plain), "--no-progress"]) == 0
    for name in ("model.safetensors", "train_model.safetensors"):
        a, b = (load_file(str(run / "checkpoints" / "step-0000004" / name)) for run in (out, plain))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_periodic_evaluation_elsewhere_is_the_fid_of_caption_samples(tiny_bert, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", "mnist", "--text-encoder", tiny_bert, "--model", "DiT-S/4", "--depth", "1",
                 "--hidden-size", "32", "--num-heads", "2", "--image-size", "16", "--max-steps", "2",
                 "--global-batch-size", "4", "--ckpt-every", "2", "--sample-every", "0", "--fid-every", "2",
                 "--fid-samples", "4", "--out", str(out), "--no-progress"]) == 0
    logged = [json.loads(line)["eval"] for line in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(logged) == 1 and set(logged[0]) == {"fid", "class_accuracy"} and np.isfinite(logged[0]["fid"])
    assert 0.0 <= logged[0]["class_accuracy"] <= 1.0  # the MNIST classifier reads the digit each caption names


def test_a_stopped_run_leaves_its_text_cache_as_of_the_last_checkpoint(tiny_bert, tmp_path):
    from ditkit.training import TrainConfig, train

    def stop(ema, step):
        raise KeyboardInterrupt

    config = TrainConfig(data="shapes", text_encoder=tiny_bert, text_cache=str(tmp_path / "cache"), image_size=16,
                         model="DiT-S/4", model_overrides={"depth": 1, "hidden_size": 32, "num_heads": 2},
                         max_steps=10, global_batch_size=4, ckpt_every=3, log_every=3, sample_every=0,
                         progress=False, out=str(tmp_path / "run"))
    with pytest.raises(KeyboardInterrupt):
        train(config, eval_fn=stop, eval_every=4)  # stops at step 4, after the checkpoint at step 3
    saved = json.loads((tmp_path / "cache" / "cache.json").read_text())["captions"]
    assert 3 <= len(saved) <= 3 * 4  # the captions of the first three batches
    resumed = train(TrainConfig(**{**config.to_dict(), "resume": "latest"}))  # reads the cache, adds the rest
    assert resumed["step"] == 10
    assert len(json.loads((tmp_path / "cache" / "cache.json").read_text())["captions"]) > len(saved)


def test_finetune_adds_the_pooled_text_path_and_starts_as_the_source(text_run, tiny_bert, tmp_path):
    from ditkit.checkpoints import load_model
    from ditkit.codecs.text import TextEncoding
    from ditkit.training import TrainConfig, train

    source = str(text_run / "checkpoints" / "step-0000020")
    config = TrainConfig(data="shapes", text_encoder=tiny_bert, image_size=16, model="DiT-S/4",
                         model_overrides={"depth": 2, "hidden_size": 32, "num_heads": 2, "text_pooled": True},
                         max_steps=1, global_batch_size=4, ckpt_every=1, lr=1e-30, ema_decay=0.0, sample_every=0,
                         progress=False, init_from=source, out=str(tmp_path / "pooled"))
    done = train(config)
    notes = json.loads((tmp_path / "pooled" / "train_config.json").read_text())["init_from_notes"]
    assert notes == ["new in this model, starting as initialised (a no-op, so it starts as the source): "
                     "null_pooled, pooled_projection"]
    before, after = load_model(source).eval(), load_model(done["checkpoint"]).eval()
    assert after.config.text_pooled and not before.config.text_pooled
    torch.manual_seed(0)
    x, t = torch.randn(3, 3, 16, 16), torch.tensor([10, 500, 999])
    text = TextEncoding(torch.randn(3, 32, 16), torch.ones(3, 32, dtype=torch.bool), torch.randn(3, 16))
    with torch.no_grad():
        torch.testing.assert_close(after(x, t, text), before(x, t, text), atol=1e-5, rtol=1e-5)

    back = TrainConfig(**{**config.to_dict(), "model_overrides": {"depth": 2, "hidden_size": 32, "num_heads": 2},
                          "init_from": done["checkpoint"], "out": str(tmp_path / "plain")})
    train(back)  # the other way round the pooled path is dropped, and said so
    notes = json.loads((tmp_path / "plain" / "train_config.json").read_text())["init_from_notes"]
    assert notes == ["not in this model, dropped from the source: null_pooled, pooled_projection"]


def test_a_joint_text_model_trains_and_samples_and_label_blocks_are_refused(tiny_bert, tmp_path, capsys):
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
