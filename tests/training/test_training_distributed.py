"""Two-process DDP on CPU (gloo) through ``torchrun -m ditkit train``."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.training.test_training import TINY_FLAGS, make_folder


def torchrun(args, debug_dir=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if debug_dir:
        env["DITKIT_TRAIN_DEBUG_DIR"] = str(debug_dir)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ditkit", "train", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # 24 images, global batch 4 = 2 per rank, 12 per rank → 6 steps per epoch
    return make_folder(tmp_path_factory.mktemp("data"), per_class=12)


def common(folder, out, steps, every):
    return ["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", str(steps), "--global-batch-size", "4",
            "--ckpt-every", str(every), "--sample-every", "0", "--ema-decay", "0.9", "--seed", "5", "--threads", "1",
            "--out", str(out), "--no-progress"]


@pytest.mark.slow
def test_two_ranks_agree_see_disjoint_shards_and_resume_exactly(folder, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    torchrun(common(folder, straight, 4, 100), debug_dir=tmp_path / "debug")
    # exactly one checkpoint (the final one), written by rank 0 alone
    assert os.listdir(straight / "checkpoints") == ["step-0000004"]
    assert len(torch.load(straight / "checkpoints/step-0000004/rng_states.pt", weights_only=True)) == 2
    ranks = [json.load(open(tmp_path / "debug" / f"rank{r}.json")) for r in (0, 1)]
    assert ranks[0]["model_sha256"] == ranks[1]["model_sha256"]  # parameters identical on both ranks
    assert ranks[0]["ema_sha256"] == ranks[1]["ema_sha256"]
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 8  # 4 steps × 2 images each
    assert len(seen0) == 8 and not seen0 & seen1  # disjoint shards (within one epoch)

    torchrun(common(folder, split, 2, 2))
    torchrun([*common(folder, split, 4, 100), "--resume", "latest"])
    for name in ("train_model.safetensors", "model.safetensors"):
        a = load_file(straight / "checkpoints/step-0000004" / name)
        b = load_file(split / "checkpoints/step-0000004" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.slow
def test_fsdp_two_ranks_runs_saves_and_resumes(folder, tmp_path):
    from ditkit.checkpoints import load_model

    out = tmp_path / "fsdp"
    torchrun([*common(folder, out, 2, 2), "--fsdp"], debug_dir=tmp_path / "debug")
    ranks = [json.load(open(tmp_path / "debug" / f"rank{r}.json")) for r in (0, 1)]
    assert ranks[0]["ema_sha256"] == ranks[1]["ema_sha256"]  # the full EMA copy agrees across ranks
    model = load_model(out / "checkpoints/step-0000002")  # the EMA half is a plain pretrained folder
    raw = load_file(out / "checkpoints/step-0000002/train_model.safetensors")
    assert set(raw) == set(model.state_dict())  # full (unsharded) raw weights were gathered
    assert all(raw[k].shape == v.shape for k, v in model.state_dict().items())
    torchrun([*common(folder, out, 3, 100), "--fsdp", "--resume", "latest"])
    assert (out / "checkpoints/step-0000003/model.safetensors").exists()
