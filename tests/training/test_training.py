"""The training engine through its public API and the ``ditkit train`` CLI, on tiny models."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ditkit.errors import DitkitError
from ditkit.models import create_model
from ditkit.training import TrainConfig, list_checkpoints, train

TINY = {"depth": 2, "hidden_size": 32, "num_heads": 2, "patch_size": 4}
TINY_FLAGS = ["--depth", "2", "--hidden-size", "32", "--num-heads", "2", "--patch-size", "4"]


def make_folder(root, classes=("cats", "dogs"), per_class=6, size=20):
    for c, name in enumerate(classes):
        os.makedirs(root / name, exist_ok=True)
        for k in range(per_class):
            rng = np.random.default_rng([c, k])
            arr = rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{k}.png")
    return str(root)


def config(data, out, **kw):
    base = dict(data=data, image_size=8, model="DiT-S/2", model_overrides=dict(TINY), max_steps=4,
                global_batch_size=4, ckpt_every=2, log_every=1, sample_every=0, seed=3, progress=False,
                ema_decay=0.9, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


def weights(ckpt_dir):
    return load_file(os.path.join(ckpt_dir, "train_model.safetensors")), load_file(os.path.join(ckpt_dir, "model.safetensors"))


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture
def run_cli(capsys):
    """``ditkit train ARGS`` through the CLI entry point, in process (a subprocess per case is slow)."""
    from ditkit.cli import main

    def run(args):
        capsys.readouterr()
        code = main(["train", *args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # 12 images, batch 4 → 3 steps per epoch: 5 steps cross an epoch boundary (and its reshuffle/flips)
    return make_folder(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("split_at, precision", [(2, "fp32"), (3, "fp32"), (2, "bf16"), (3, "auto")])
def test_resume_is_bit_identical(folder, tmp_path, split_at, precision):
    """Split mid-epoch (2) and exactly at an epoch end (3), in fp32, bf16 autocast and the default."""
    straight = train(config(folder, tmp_path / "a", max_steps=5, ckpt_every=5, precision=precision))
    train(config(folder, tmp_path / "b", max_steps=split_at, ckpt_every=split_at, precision=precision))
    resumed = train(config(folder, tmp_path / "b", max_steps=5, ckpt_every=5, resume="latest", precision=precision))
    assert straight["step"] == resumed["step"] == 5
    raw_a, ema_a = weights(straight["checkpoint"])
    raw_b, ema_b = weights(resumed["checkpoint"])
    assert_same(raw_a, raw_b)
    assert_same(ema_a, ema_b)
    opt_a = torch.load(os.path.join(straight["checkpoint"], "optimizer.pt"), weights_only=True)
    opt_b = torch.load(os.path.join(resumed["checkpoint"], "optimizer.pt"), weights_only=True)
    assert all(torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"]) for i in opt_a["state"])
    # the metrics log of the resumed run matches the straight run's, line for line
    la = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    lb = [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    # and training actually changed the weights
    init = create_model("DiT-S/2", input_size=8, in_channels=3, num_classes=2, **TINY)
    assert not torch.equal(raw_a["final_layer.linear.weight"], init.state_dict()["final_layer.linear.weight"])


def test_run_folder_outputs_and_checkpoint_is_a_pretrained_model(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli(["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "4", "--global-batch-size",
                      "4", "--ckpt-every", "1", "--keep-last", "2", "--log-every", "2", "--sample-every", "2",
                      "--sample-steps", "3", "--sample-count", "4", "--ema-decay", "0.5", "--seed", "7",
                      "--out", str(out), "--no-progress"])
    assert result.returncode == 0, result.stderr
    ckpts = list_checkpoints(str(out / "checkpoints"))
    assert [os.path.basename(p) for p in ckpts] == ["step-0000003", "step-0000004"]  # keep-last 2
    assert not [n for n in os.listdir(out / "checkpoints") if n.startswith(".")]
    cfg = json.load(open(out / "train_config.json"))
    assert cfg["seed"] == 7 and isinstance(cfg["command"], list) and cfg["ditkit_version"]
    assert cfg["config"]["ema_decay"] == 0.5 and cfg["model_config"]["num_classes"] == 2
    records = [json.loads(x) for x in open(out / "metrics.jsonl")]
    assert [r["step"] for r in records] == [2, 4]
    assert {"loss", "mse", "vb", "lr", "grad_norm", "img_per_s"} <= set(records[0])
    assert all(np.isfinite(r["loss"]) and r["lr"] == 1e-4 for r in records)
    for name in ("samples/step-0000002.png", "samples/step-0000004.png", "loss_curve.png"):
        assert Image.open(out / name).size[0] > 8
    # the checkpoint folder is a ditkit pretrained model holding the EMA weights
    meta = json.load(open(ckpts[-1] + "/config.json"))
    assert meta["format"] == "ditkit" and meta["class_names"] == ["cats", "dogs"]
    state = json.load(open(ckpts[-1] + "/training_state.json"))
    assert state["step"] == 4 and state["ditkit_version"] and len(torch.load(ckpts[-1] + "/rng_states.pt", weights_only=True)) == 1
    try:
        from ditkit.checkpoints import load_model
    except ImportError:
        model = create_model(meta["model"])
        model.load_state_dict(load_file(ckpts[-1] + "/model.safetensors"))
    else:
        model = load_model(ckpts[-1])
    ema = load_file(ckpts[-1] + "/model.safetensors")
    assert all(torch.equal(v.float(), ema[k]) for k, v in model.state_dict().items())
    raw = load_file(ckpts[-1] + "/train_model.safetensors")
    assert not torch.equal(raw["final_layer.linear.weight"], ema["final_layer.linear.weight"])


def test_sigkill_during_checkpoint_write_keeps_previous(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    args = ["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "4", "--global-batch-size", "4",
            "--ckpt-every", "2", "--sample-every", "0", "--ema-decay", "0.9", "--seed", "3", "--out", str(out),
            "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", DITKIT_TEST_CHECKPOINT_PAUSE="4:60")
    proc = subprocess.Popen([sys.executable, "-m", "ditkit", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = out / "checkpoints"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # wait until the step-4 write is half done
            partial = [n for n in os.listdir(ckpt_dir) if n.startswith(".step-0000004")] if ckpt_dir.exists() else []
            if partial and os.path.exists(ckpt_dir / partial[0] / "train_model.safetensors"):
                break
            assert proc.poll() is None, "training ended before the checkpoint write"
            time.sleep(0.1)
        else:
            pytest.fail("the step-4 checkpoint write never started")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert [os.path.basename(p) for p in list_checkpoints(str(ckpt_dir))] == ["step-0000002"]
    resumed = run_cli([*args, "--resume", "latest"])
    assert resumed.returncode == 0, resumed.stderr
    straight = train(config(folder, tmp_path / "straight", max_steps=4, ckpt_every=4))
    raw_a, ema_a = weights(straight["checkpoint"])
    raw_b, ema_b = weights(str(ckpt_dir / "step-0000004"))
    assert_same(raw_a, raw_b)
    assert_same(ema_a, ema_b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli(["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "6", "--global-batch-size",
                      "4", "--ckpt-every", "1", "--lr", "1e30", "--sample-every", "0", "--out", str(out), "--no-progress"])
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert "loss became" in err[-1] and "last good checkpoint" in err[-1] and "Traceback" not in result.stderr
    good = list_checkpoints(str(out / "checkpoints"))
    assert good and good[-1] in err[-1]
    state = json.load(open(os.path.join(good[-1], "training_state.json")))
    assert state["step"] < 6


def test_finetune_with_a_different_class_count(folder, tmp_path):
    source = train(config("shapes", tmp_path / "src", max_steps=1, ckpt_every=1))
    src_ema = load_file(os.path.join(source["checkpoint"], "model.safetensors"))
    assert src_ema["y_embedder.embedding_table.weight"].shape[0] == 11
    out = tmp_path / "ft"
    done = train(config(folder, out, max_steps=1, ckpt_every=1, lr=1e-30, ema_decay=0.0, init_from=source["checkpoint"]))
    notes = json.load(open(out / "train_config.json"))["init_from_notes"]
    assert any("label table resized from 11 to 3" in n for n in notes)
    got = load_file(os.path.join(done["checkpoint"], "train_model.safetensors"))
    table = got["y_embedder.embedding_table.weight"]
    assert table.shape[0] == 3
    torch.testing.assert_close(table[-1], src_ema["y_embedder.embedding_table.weight"][-1], atol=1e-20, rtol=1e-6)
    for key in ("blocks.0.attn.qkv.weight", "final_layer.linear.weight", "t_embedder.mlp.0.weight"):
        torch.testing.assert_close(got[key], src_ema[key], atol=1e-20, rtol=1e-6)


def test_bf16_runs_on_cpu_and_fp16_needs_gpu(folder, tmp_path):
    done = train(config(folder, tmp_path / "bf16", max_steps=1, ckpt_every=1, precision="bf16"))
    assert np.isfinite(done["loss"])
    if not torch.cuda.is_available():
        with pytest.raises(DitkitError, match="fp16 needs a CUDA GPU"):
            train(config(folder, tmp_path / "fp16", precision="fp16"))


def test_class_count_mismatch_on_resume(tmp_path):
    data = make_folder(tmp_path / "data", classes=("a", "b"), per_class=4)
    train(config(data, tmp_path / "run", max_steps=1, ckpt_every=1))
    make_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=4)
    with pytest.raises(DitkitError, match="2 classes but the data has 3"):
        train(config(data, tmp_path / "run", max_steps=2, resume="latest"))


@pytest.mark.parametrize("case, message", [
    ("missing", "data folder not found"),
    ("empty", "no images found"),
    ("unwritable", "cannot write to the output folder"),
    ("no_checkpoint", "no checkpoint in"),
    ("batch_too_big", "fewer than one global batch"),
    ("bad_model", "unknown model name"),
])
def test_bad_input_is_one_clear_line(folder, tmp_path, case, message, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --out relative, new folders two deep, as a user types it: none may be left
    data, out, extra = folder, os.path.join("runs", "out"), []
    if case == "missing":
        data = str(tmp_path / "nope")
    elif case == "empty":
        data = str(tmp_path / "empty")
        os.makedirs(data)
    elif case == "unwritable":
        (tmp_path / "file").write_text("a file, not a folder")
        out = str(tmp_path / "file" / "run")
    elif case == "no_checkpoint":
        extra = ["--resume", "latest"]
    elif case == "batch_too_big":
        extra = ["--global-batch-size", "64"]
    elif case == "bad_model":
        extra = ["--model", "DiT-Q/3"]
    result = run_cli(["--data", data, "--image-size", "8", *TINY_FLAGS, "--max-steps", "1", "--out", out,
                      "--no-progress", *extra])
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "runs").exists()


def test_corrupt_images_skipped_or_strict(tmp_path, run_cli):
    data = make_folder(tmp_path / "data", per_class=4)
    (tmp_path / "data" / "cats" / "bad.png").write_bytes(b"\x89PNG broken")
    common = ["--data", data, "--image-size", "8", *TINY_FLAGS, "--max-steps", "1", "--global-batch-size", "4",
              "--sample-every", "0", "--no-progress"]
    ok = run_cli([*common, "--out", str(tmp_path / "a")])
    assert ok.returncode == 0, ok.stderr
    assert "skipped 1 unreadable image" in ok.stderr
    assert json.load(open(tmp_path / "a" / "train_config.json"))["data"]["skipped_images"] == 1
    strict = run_cli([*common, "--out", str(tmp_path / "b"), "--strict"])
    assert strict.returncode == 2 and "unreadable" in strict.stderr and "Traceback" not in strict.stderr


def test_vae_latent_cache_training(folder, tmp_path):
    """--vae with --latent-cache: the cache is built once (with mirrored latents), the model trains on
    4×(8/2)×(8/2) latents, and a second run reuses the cache."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=16)
    vae.save_pretrained(tmp_path / "vae")
    cache = tmp_path / "cache"
    small = dict(TINY, patch_size=2)
    done = train(config(folder, tmp_path / "run", max_steps=2, vae=str(tmp_path / "vae"), latent_cache=str(cache),
                        model_overrides=small))
    meta = json.load(open(cache / "cache.json"))
    assert meta["codec"]["type"] == "vae" and meta["shard_sizes"] == [12]
    cfg = json.load(open(os.path.join(done["checkpoint"], "config.json")))
    assert cfg["model"]["in_channels"] == 4 and cfg["model"]["input_size"] == 4 and cfg["codec"]["type"] == "vae"
    # the cache folder itself is valid --data, with its own codec
    again = train(config(str(cache), tmp_path / "run2", max_steps=1, model_overrides=small))
    assert np.isfinite(again["loss"])
