"""``ditkit sample`` end to end on tiny checkpoints saved by the tests (pixel codec, a tiny local VAE,
raw latents), plus resume, bad input, and two-process torchrun (gloo on CPU)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from ditkit.cli import main
from ditkit.codecs import make_codec
from ditkit.models import DiTConfig, create_model

ROOT = Path(__file__).resolve().parents[2]


def save_tiny_checkpoint(folder: Path, *, num_classes=10, in_channels=3, codec=None) -> Path:
    from ditkit.checkpoints import save_pretrained

    torch.manual_seed(0)
    model = create_model(DiTConfig(input_size=8, patch_size=2, in_channels=in_channels, hidden_size=32, depth=2,
                                   num_heads=2, num_classes=num_classes))
    # adaLN-Zero starts as the identity with a zero output layer; perturb so labels and steps matter.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    codec = codec if codec is not None else make_codec("pixel", image_channels=in_channels)
    class_names = [f"class {i}" for i in range(num_classes)] if num_classes else None
    save_pretrained(model, folder, codec=codec, class_names=class_names)
    return folder


@pytest.fixture(scope="module")
def pixel_ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "pixel-dit")


@pytest.fixture(scope="module")
def uncond_ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "uncond-dit", num_classes=0)


@pytest.fixture(scope="module")
def gray_ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "gray-dit", in_channels=1)


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=4, norm_num_groups=4, sample_size=16)
    folder = tmp_path_factory.mktemp("vae") / "tiny-vae"
    vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def latent_ckpt(tmp_path_factory, tiny_vae):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "latent-dit", in_channels=4,
                                codec=make_codec(str(tiny_vae)))


def cli(capsys, *argv):
    """Run ``ditkit`` in-process; (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pngs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "samples").glob("*.png"))}


def png_array(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


FAST = ["--steps", "3", "--sampler", "ddim"]


def test_pixel_model_end_to_end(capsys, tmp_path, pixel_ckpt):
    out = tmp_path / "run"
    code, stdout, _ = cli(capsys, "sample", "--checkpoint", pixel_ckpt, "--classes", "3,1,3", "--seed", "5",
                          "--cfg-scale", "4", *FAST, "--out", out, "--npz")
    assert code == 0, stdout
    files = pngs(out)
    assert list(files) == ["000000_class3.png", "000001_class1.png", "000002_class3.png"]
    images = np.stack([png_array(out / "samples" / name) for name in files])
    assert images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
    with np.load(out / "samples.npz") as npz:
        assert np.array_equal(npz["arr_0"], images) and npz["labels"].tolist() == [3, 1, 3]
    # grid: one row per class (3, then 1), two columns, 2-pixel padding
    grid = png_array(out / "grid.png")
    assert grid.shape == (2 + 2 * 10, 2 + 2 * 10, 3)
    assert np.array_equal(grid[2:10, 12:20], images[2]) and np.array_equal(grid[12:20, 2:10], images[1])
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["seed"] == 5 and run["settings"]["steps"] == 3 and run["settings"]["classes"] == [3, 1, 3]
    assert run["settings"]["sampler"] == "ddim" and run["settings"]["cfg_scale"] == 4.0
    assert run["model"]["num_classes"] == 10 and run["model"]["hidden_size"] == 32
    assert run["ditkit_version"] and run["codec"]["type"] == "pixel"
    assert run["diffusion"] == {"diffusion_steps": 1000, "noise_schedule": "linear", "learn_sigma": True,
                                    "loss_weighting": "eps"}
    assert "--seed 5" in run["command"] and "--classes 3,1,3" in run["command"]
    assert "3 samples in" in stdout
    assert not [p for p in out.rglob(".*")]  # no temp files left


def test_recorded_command_replays_the_run(capsys, tmp_path, pixel_ckpt):
    # No --steps: the command in run.json must name the steps the sampler chose, and run as typed.
    first = tmp_path / "first"
    assert cli(capsys, "sample", "--checkpoint", pixel_ckpt, "-n", "2", "--sampler", "dpm++", "--seed", "3",
               "--out", first)[0] == 0
    command = json.loads((first / "run.json").read_text())["command"]
    assert "--steps 20" in command and "--num-samples 2" in command
    argv = shlex.split(command)
    assert argv[:2] == ["ditkit", "sample"] and argv[-2] == "--out"
    code, _, err = cli(capsys, *argv[1:-1], tmp_path / "replay")
    assert code == 0, err
    assert pngs(tmp_path / "replay") == pngs(first) and len(pngs(first)) == 2


def test_same_seed_same_bytes_and_batch_size_does_not_matter(capsys, tmp_path, pixel_ckpt):
    common = ["sample", "--checkpoint", pixel_ckpt, "--num-samples", "5", "--cfg-scale", "2", "--steps", "3"]
    assert cli(capsys, *common, "--batch-size", "2", "--out", tmp_path / "a")[0] == 0
    assert cli(capsys, *common, "--batch-size", "2", "--out", tmp_path / "b")[0] == 0
    assert cli(capsys, *common, "--batch-size", "5", "--out", tmp_path / "c")[0] == 0
    assert cli(capsys, *common, "--batch-size", "2", "--seed", "1", "--out", tmp_path / "d")[0] == 0
    a, b, c, d = (pngs(tmp_path / x) for x in "abcd")
    assert len(a) == 5 and a == b
    assert a.keys() == c.keys()
    for name in a:  # other batch shapes: equal up to float rounding
        diff = png_array(tmp_path / "a" / "samples" / name).astype(int) - png_array(tmp_path / "c" / "samples" / name)
        assert np.abs(diff).max() <= 1
    assert all(a[name] != d[name] for name in a)


def test_num_samples_spreads_evenly_over_classes(capsys, tmp_path, pixel_ckpt):
    out = tmp_path / "run"
    assert cli(capsys, "sample", "--checkpoint", pixel_ckpt, "--num-samples", "20", "--steps", "1", "--sampler",
               "dpm++", "--batch-size", "20", "--out", out, "--npz")[0] == 0
    names = list(pngs(out))
    assert names == [f"{i:06d}_class{i % 10}.png" for i in range(20)]
    with np.load(out / "samples.npz") as npz:
        assert npz["arr_0"].shape == (20, 8, 8, 3)
        assert np.bincount(npz["labels"], minlength=10).tolist() == [2] * 10
        assert len({img.tobytes() for img in npz["arr_0"]}) == 20


def test_through_a_local_vae_and_raw_latents(capsys, tmp_path, latent_ckpt, tiny_vae):
    common = ["sample", "--checkpoint", latent_ckpt, "--classes", "0,7", *FAST]
    assert cli(capsys, *common, "--vae", tiny_vae, "--out", tmp_path / "decoded")[0] == 0
    decoded = [png_array(p) for p in sorted((tmp_path / "decoded" / "samples").glob("*.png"))]
    assert [im.shape for im in decoded] == [(16, 16, 3)] * 2  # the VAE upsamples the 8x8 latents by 2
    assert json.loads((tmp_path / "decoded" / "run.json").read_text())["settings"]["vae"] == str(tiny_vae.resolve())
    # the checkpoint's own codec (the same VAE) is the default
    assert cli(capsys, *common, "--out", tmp_path / "default")[0] == 0
    assert pngs(tmp_path / "default") == pngs(tmp_path / "decoded")

    assert cli(capsys, *common, "--vae", "none", "--out", tmp_path / "raw")[0] == 0
    assert not (tmp_path / "raw" / "samples").exists() and not (tmp_path / "raw" / "grid.png").exists()
    saved = load_file(tmp_path / "raw" / "latents.safetensors")
    assert saved["latents"].shape == (2, 4, 8, 8) and saved["labels"].tolist() == [0, 7]
    # decoding the raw latents gives the decoded run's images
    images = make_codec(str(tiny_vae)).decode(saved["latents"])
    again = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(again, decoded))


def test_grayscale_model_writes_gray_pngs_and_rgb_npz(capsys, tmp_path, gray_ckpt):
    out = tmp_path / "run"
    assert cli(capsys, "sample", "--checkpoint", gray_ckpt, "--num-samples", "3", *FAST, "--out", out, "--npz")[0] == 0
    with Image.open(out / "samples" / "000000_class0.png") as im:
        assert im.mode == "L" and im.size == (8, 8)
    with np.load(out / "samples.npz") as npz:
        arr = npz["arr_0"]
        assert arr.shape == (3, 8, 8, 3)
        assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])


def test_unconditional_model(capsys, tmp_path, uncond_ckpt):
    out = tmp_path / "run"
    assert cli(capsys, "sample", "--checkpoint", uncond_ckpt, "--num-samples", "2", *FAST, "--out", out, "--npz")[0] == 0
    assert list(pngs(out)) == ["000000.png", "000001.png"]
    with np.load(out / "samples.npz") as npz:
        assert set(npz.files) == {"arr_0"}


def test_resume_skips_existing_samples_and_refuses_other_settings(capsys, tmp_path, pixel_ckpt):
    out = tmp_path / "run"
    command = ["sample", "--checkpoint", pixel_ckpt, "--num-samples", "6", *FAST, "--out", out, "--npz"]
    assert cli(capsys, *command)[0] == 0
    before = pngs(out)
    removed = ["000001_class1.png", "000004_class4.png"]
    for name in removed:
        (out / "samples" / name).unlink()
    kept = {p.name: os.stat(p).st_ino for p in (out / "samples").glob("*.png")}
    code, stdout, _ = cli(capsys, *command)
    assert code == 0 and "(4 already there)" in stdout
    assert pngs(out) == before  # the missing ones come back identical
    assert {p.name: os.stat(p).st_ino for p in (out / "samples").glob("*.png") if p.name in kept} == kept
    with np.load(out / "samples.npz") as npz:
        assert npz["arr_0"].shape[0] == 6

    code, _, err = cli(capsys, *command[:-3], "--seed", "9", "--out", out)
    assert code == 2 and "different settings (seed)" in err


def test_default_checkpoint(capsys, tmp_path, monkeypatch, pixel_ckpt):
    import ditkit.checkpoints.bundled as checkpoints  # where the folder is looked up

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(checkpoints, "BUNDLED_MODELS_DIR", bundled)
    code, _, err = cli(capsys, "sample", "--num-samples", "1", "--out", tmp_path / "a")
    assert code == 2 and "no default model is bundled" in err
    shutil.copytree(pixel_ckpt, bundled / "mnist-dit")
    assert cli(capsys, "sample", "--num-samples", "1", *FAST, "--out", tmp_path / "b")[0] == 0
    chosen = json.loads((tmp_path / "b" / "run.json").read_text())["settings"]["checkpoint"]
    assert chosen == str((bundled / "mnist-dit").resolve())


def test_bundled_models_by_name(capsys, tmp_path, monkeypatch, pixel_ckpt):
    """Every bundled model answers to its folder name, wherever a checkpoint path is taken."""
    import ditkit.checkpoints.bundled as checkpoints  # where the folder is looked up

    monkeypatch.setattr(checkpoints, "BUNDLED_MODELS_DIR", tmp_path / "bundled")
    shutil.copytree(pixel_ckpt, tmp_path / "bundled" / "shapes-dit")
    monkeypatch.chdir(tmp_path)  # no folder called shapes-dit here: the name is looked up
    assert cli(capsys, "sample", "--checkpoint", "shapes-dit", "--num-samples", "1", *FAST, "--out", "s")[0] == 0
    chosen = json.loads((tmp_path / "s" / "run.json").read_text())["settings"]["checkpoint"]
    assert chosen == str((tmp_path / "bundled" / "shapes-dit").resolve())
    code, out, _ = cli(capsys, "info", "shapes-dit")
    assert code == 0 and "shapes-dit" in out
    code, _, err = cli(capsys, "sample", "--checkpoint", "cats-dit", "--num-samples", "1", "--out", "c")
    assert code == 2 and "No checkpoint at cats-dit (bundled models: shapes-dit)" in err


@pytest.mark.parametrize("args, message", [
    (["--classes", "3,10"], "class label 10 is out of range"),
    (["--classes", "class 2,dog"], "unknown class 'dog'; this model's classes are: class 0, class 1"),
    (["--classes", ","], "at least one class"),
    (["--cfg-scale", "nan"], "expected a finite number, got 'nan'"),
    (["--cfg-scale", "inf"], "expected a finite number, got 'inf'"),
    (["--cfg-scale=-inf"], "expected a finite number"),
    (["--sampler", "ddim", "--eta", "nan"], "expected a finite number"),
    (["--sampler", "dpm++", "--eta", "0.5"], "the dpm++ sampler has no option 'eta'"),
    (["--num-samples", "2", "--steps", "0"], "steps"),
    (["--num-samples", "2", "--sampler", "eulerr"], "invalid choice"),
    (["--num-samples", "2", "--vae", "none", "--npz"], "--npz needs decoded images"),
    (["--num-samples", "2", "--guided-channels", "7"], "guided channels"),
    (["--num-samples", "0"], "at least 1"),
    (["--num-samples", "1", "--device", "tpu9"], "unknown device"),
])
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, pixel_ckpt, args, message):
    code, _, err = cli(capsys, "sample", "--checkpoint", pixel_ckpt, *args, "--out", tmp_path / "run")
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "samples").exists()


def test_output_path_that_is_a_file(capsys, tmp_path, pixel_ckpt):
    (tmp_path / "taken").write_text("x")
    code, _, err = cli(capsys, "sample", "--checkpoint", pixel_ckpt, "--num-samples", "1", "--out", tmp_path / "taken")
    assert code == 2 and "is a file" in err and len(err.strip().splitlines()) == 1


def test_missing_checkpoint_and_labels_for_unconditional(capsys, tmp_path, uncond_ckpt):
    code, _, err = cli(capsys, "sample", "--checkpoint", tmp_path / "nope", "--num-samples", "1", "--out", tmp_path / "o")
    assert code == 2 and "No checkpoint at" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "sample", "--checkpoint", uncond_ckpt, "--classes", "1", "--out", tmp_path / "o")
    assert code == 2 and "unconditional" in err and len(err.strip().splitlines()) == 1


def _env():
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=pythonpath)
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def test_official_checkpoint_defaults_to_the_sd_vae_and_fails_clearly_offline(tmp_path, fixtures_dir):
    """Official .pt files carry no codec: the SD VAE is the default; unreachable, that is one clear line."""
    command = [sys.executable, "-m", "ditkit", "sample", "--checkpoint", fixtures_dir / "tiny_dit_state_dict.pt",
               "--classes", "1,2", "--num-heads", "4", *FAST, "--out", tmp_path / "a"]
    proc = subprocess.run([str(a) for a in command], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "stabilityai/sd-vae-ft-ema" in proc.stderr and "--vae PATH" in proc.stderr and "--vae none" in proc.stderr


def test_official_checkpoint_through_a_local_vae(capsys, tmp_path, fixtures_dir, tiny_vae):
    state_dict = fixtures_dir / "tiny_dit_state_dict.pt"
    code, _, err = cli(capsys, "sample", "--checkpoint", state_dict, "--classes", "1,2", *FAST, "--vae", tiny_vae,
                       "--cfg-scale", "1.5", "--guided-channels", "3", "--num-heads", "4", "--out", tmp_path / "b")
    assert code == 0 and "warning" not in err, err
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == ["000000_class1.png", "000001_class2.png"]
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["codec"] is None and run["settings"]["guided_channels"] == 3 and run["model"]["num_heads"] == 4
    # without --num-heads the loader guesses, and says so in one line
    code, _, err = cli(capsys, "sample", "--checkpoint", state_dict, "--classes", "1", "--steps", "1", "--vae", "none",
                       "--out", tmp_path / "c")
    assert code == 0 and err.count("ditkit sample: warning:") == 1 and "num_heads" in err


@pytest.mark.slow  # torchrun with two ranks, like the other torchrun tests (~14 s)
def test_torchrun_two_processes_share_the_work_and_resume(capsys, tmp_path, pixel_ckpt):
    """An interrupted single-process run finished by two torchrun ranks (gloo): the missing samples are
    shared between the ranks, the ones on disk are skipped, and the result is what one process makes."""
    args = ["sample", "--checkpoint", pixel_ckpt, "--num-samples", "20", "--steps", "2", "--batch-size", "4", "--npz"]
    single = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun rank (OMP_NUM_THREADS=1): the same kernels, the same bits
    try:
        assert cli(capsys, *args, "--out", single)[0] == 0
    finally:
        torch.set_num_threads(threads)
    expected = pngs(single)

    out = tmp_path / "ddp"
    shutil.copytree(single, out)
    (out / "samples.npz").unlink()
    kept_names = ["000000_class0.png", "000007_class7.png", "000011_class1.png", "000019_class9.png"]
    for name in set(expected) - set(kept_names):
        (out / "samples" / name).unlink()
    (out / "samples" / ".000005_class5.png.abc.tmp").write_bytes(b"partial")  # left by a killed run
    kept = {name: os.stat(out / "samples" / name).st_ino for name in kept_names}

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ditkit",
               *args, "--out", out]
    proc = subprocess.run([str(a) for a in command], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "20 samples in" in proc.stdout and "(4 already there)" in proc.stdout
    assert "rank 0 of 2: drew 8 samples" in proc.stdout and "rank 1 of 2: drew 8 samples" in proc.stdout
    assert pngs(out) == expected
    assert {name: os.stat(out / "samples" / name).st_ino for name in kept_names} == kept  # not rewritten
    assert not list((out / "samples").glob(".*"))
    with np.load(out / "samples.npz") as npz:
        images, labels = npz["arr_0"], npz["labels"]
    assert images.shape == (20, 8, 8, 3) and len({im.tobytes() for im in images}) == 20
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    assert json.loads((out / "run.json").read_text())["runtime"]["world_size"] == 2


@pytest.mark.slow  # the real bundled model at the default 250 DDPM steps (~10 s of CPU)
def test_no_flags_draws_one_sample_per_class_of_the_default_model_as_a_grid(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = cli(capsys, "sample")  # the first command a new user types: the bundled mnist-dit
    assert code == 0, err
    out = tmp_path / "ditkit-samples"
    assert list(pngs(out)) == [f"{i:06d}_class{i}.png" for i in range(10)]
    size = png_array(out / "samples" / "000000_class0.png").shape[0]
    # 10 distinct classes: a near-square grid, 4 columns and 3 rows, 2-pixel padding
    assert png_array(out / "grid.png").shape[:2] == (2 + 3 * (size + 2), 2 + 4 * (size + 2))
    run = json.loads((out / "run.json").read_text())
    # the bundled model's recorded sampling (extra.sampling), not the DDPM default
    assert (run["settings"]["sampler"], run["settings"]["steps"], run["settings"]["cfg_scale"]) == ("heun", 10, 2.5)
    assert "10 samples in" in stdout and "\r" not in err  # stderr is not a terminal: plain progress lines


def test_classes_by_the_names_the_checkpoint_stores(capsys, tmp_path, pixel_ckpt):
    out = tmp_path / "named"
    code, _, err = cli(capsys, "sample", "--checkpoint", pixel_ckpt, "--classes", "class 3, CLASS 1,4", *FAST,
                       "--out", out)
    assert code == 0, err
    assert list(pngs(out)) == ["000000_class3.png", "000001_class1.png", "000002_class4.png"]
    assert json.loads((out / "run.json").read_text())["settings"]["classes"] == [3, 1, 4]
    # the same classes by number resume the same run: nothing left to draw
    code, stdout, _ = cli(capsys, "sample", "--checkpoint", pixel_ckpt, "--classes", "3,1,4", *FAST, "--out", out)
    assert code == 0 and "(3 already there)" in stdout


@pytest.mark.parametrize("model, classes, expected", [
    ("mnist-dit", "7,3", ["000000_class7.png", "000001_class3.png"]),
    ("shapes-dit", "cyan diamond,Red Circle", ["000000_class7.png", "000001_class0.png"]),
])
def test_class_names_of_the_bundled_models(capsys, tmp_path, model, classes, expected):
    out = tmp_path / model
    code, _, err = cli(capsys, "sample", "--checkpoint", model, "--classes", classes, "--steps", "1", "--sampler",
                       "ddim", "--out", out)
    assert code == 0, err
    assert list(pngs(out)) == expected
    code, _, err = cli(capsys, "sample", "--checkpoint", model, "--classes", "giraffe", "--out", tmp_path / "x")
    assert code == 2 and "unknown class 'giraffe'" in err and len(err.strip().splitlines()) == 1


def test_eta_is_a_ddim_option_recorded_for_resume(capsys, tmp_path, pixel_ckpt):
    base = ["sample", "--checkpoint", pixel_ckpt, "--classes", "1,2", *FAST]
    assert cli(capsys, *base, "--out", tmp_path / "a")[0] == 0
    assert cli(capsys, *base, "--eta", "1", "--out", tmp_path / "b")[0] == 0
    assert pngs(tmp_path / "a") != pngs(tmp_path / "b")
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["settings"]["eta"] == 1.0 and "--eta 1.0" in run["command"]
    assert "eta" not in json.loads((tmp_path / "a" / "run.json").read_text())["settings"]
    code, _, err = cli(capsys, *base, "--eta", "0.5", "--out", tmp_path / "b")
    assert code == 2 and "different settings (eta)" in err


def test_heun_from_the_command_line(capsys, tmp_path, pixel_ckpt):
    code, _, err = cli(capsys, "sample", "--checkpoint", pixel_ckpt, "--classes", "5", "--sampler", "heun",
                       "--steps", "3", "--out", tmp_path / "h")
    assert code == 0, err
    assert list(pngs(tmp_path / "h")) == ["000000_class5.png"]


def test_progress_in_a_log_is_a_few_plain_lines(capsys, tmp_path, pixel_ckpt):
    """stderr is not a terminal here: whole lines at each tenth, never carriage-return fragments."""
    common = ["sample", "--checkpoint", pixel_ckpt, "--sampler", "ddim", "--steps", "40"]
    code, _, err = cli(capsys, *common, "--classes", "1,2", "--out", tmp_path / "one")
    assert code == 0 and "\r" not in err
    steps = [line for line in err.splitlines() if line.startswith("ddim:")]  # one batch: per sampling step
    assert len(steps) == 10 and "40/40" in steps[-1]
    code, _, err = cli(capsys, *common, "--num-samples", "20", "--batch-size", "2", "--out", tmp_path / "many")
    assert code == 0 and "\r" not in err
    images = [line for line in err.splitlines() if line.startswith("sampling (ddim)")]  # several: per image
    assert len(images) == 10 and "20/20" in images[-1] and not any(line.startswith("ddim:") for line in err.splitlines())
