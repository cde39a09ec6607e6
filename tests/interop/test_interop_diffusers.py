"""diffusers interop: ditkit checkpoint → diffusers DiT folder → diffusers and back into ditkit, offline."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

import ditkit
from ditkit.checkpoints import save_pretrained
from ditkit.cli import main
from ditkit.errors import DitkitError
from ditkit.interop.diffusers import use_dit_timestep_frequencies
from ditkit.models import create_model

from tests.conftest import fixture_path

diffusers = pytest.importorskip("diffusers")

FIXTURES = fixture_path("reference-dit")
STATE_DICT = FIXTURES / "tiny_dit_state_dict.pt"
TINY = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4, mlp_ratio=4.0,
            num_classes=10, class_dropout_prob=0.1, learn_sigma=True, block="adaln-zero")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers' advice to install accelerate
        yield


def _inputs(n=4, channels=4, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g), torch.tensor([0, 17, 500, 999][:n])


def _export(capsys, *argv) -> tuple[int, str, str]:
    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _perturbed(model):
    """Noise on every weight, so the zero-initialised adaLN-Zero layers cannot hide a wrong conversion."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _transformer(folder: Path):
    return diffusers.DiTTransformer2DModel.from_pretrained(folder, subfolder="transformer").eval()


def _tiny_vae(folder: Path) -> Path:
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, sample_size=16)
    vae.save_pretrained(folder)
    return folder


def test_exported_transformer_matches_ditkit_forward(tmp_path, capsys):
    reference = ditkit.load_model(STATE_DICT, num_heads=4)
    code, out, _ = _export(capsys, STATE_DICT, tmp_path / "dit", "--num-heads", "4")
    assert code == 0 and "DiTTransformer2DModel folder" in out
    umask = os.umask(0)
    os.umask(umask)
    for file in (tmp_path / "dit").rglob("*"):  # as readable as any file the user writes
        assert file.stat().st_mode & 0o777 == (0o777 if file.is_dir() else 0o666) & ~umask, file
    transformer = _transformer(tmp_path / "dit")
    x, t = _inputs()
    y = torch.tensor([3, 7, 10, 0])  # 10 is ditkit's null class; DiTPipeline's null class is 1000
    with torch.no_grad():
        expected = reference(x, t, y)
        as_is = transformer(x, timestep=t, class_labels=torch.tensor([3, 7, 1000, 0])).sample
        assert use_dit_timestep_frequencies(transformer) == 2
        matched = transformer(x, timestep=t, class_labels=torch.tensor([3, 7, 1000, 0])).sample
        padded = transformer(x, timestep=t, class_labels=torch.tensor([3, 7, 500, 0])).sample
    # diffusers' own timestep frequencies (10000^(-i/127)) move the output measurably ...
    assert (as_is - expected).abs().max() > 1e-3
    # ... and with DiT's frequencies the diffusers forward is ditkit's
    torch.testing.assert_close(matched, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(padded, expected, rtol=0, atol=1e-5)  # unused labels mean "unconditional"


def test_diffusers_folder_loads_back_into_ditkit(tmp_path, capsys):
    reference = ditkit.load_model(STATE_DICT, num_heads=4)
    assert _export(capsys, STATE_DICT, tmp_path / "dit", "--num-heads", "4")[0] == 0
    x, t = _inputs()
    y = torch.tensor([3, 7, 10, 0])
    for path in (tmp_path / "dit", tmp_path / "dit" / "transformer"):
        model = ditkit.load_model(path)
        assert model.config == reference.config
        with torch.no_grad():
            assert torch.equal(model(x, t, y), reference(x, t, y))
    assert main(["info", str(tmp_path / "dit")]) == 0
    assert "(diffusers)" in capsys.readouterr().out


def test_out_option_equals_the_positional_folder(tmp_path, capsys):
    assert _export(capsys, STATE_DICT, tmp_path / "positional", "--num-heads", "4")[0] == 0
    assert _export(capsys, STATE_DICT, "--out", tmp_path / "option", "--num-heads", "4")[0] == 0
    files = sorted(p.relative_to(tmp_path / "positional") for p in (tmp_path / "positional").rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(tmp_path / "option")
                                     for p in (tmp_path / "option").rglob("*") if p.is_file())
    for name in files:
        assert (tmp_path / "positional" / name).read_bytes() == (tmp_path / "option" / name).read_bytes(), name
    code, _, err = _export(capsys, STATE_DICT, "--num-heads", "4")
    assert code == 2 and "needs the folder to write" in err and err.count("\n") == 1
    code, _, err = _export(capsys, STATE_DICT, tmp_path / "a", "--out", tmp_path / "b", "--num-heads", "4")
    assert code == 2 and "two output folders" in err and err.count("\n") == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_native_diffusers_dit_without_ditkit_metadata_loads(tmp_path, capsys):
    """A diffusers folder ditkit did not write (no ditkit_config.json): config from the transformer config."""
    reference = ditkit.load_model(STATE_DICT, num_heads=4)
    assert _export(capsys, STATE_DICT, tmp_path / "dit", "--num-heads", "4")[0] == 0
    (tmp_path / "dit" / "transformer" / "ditkit_config.json").unlink()
    assert main(["info", str(tmp_path / "dit")]) == 0
    assert "written by: diffusers" in capsys.readouterr().out
    loaded = ditkit.checkpoints.load_checkpoint(tmp_path / "dit")
    assert loaded.kind == "diffusers" and loaded.config["diffusion"]["noise_schedule"] == "linear"
    model = loaded.model
    assert model.config.num_classes == 1000 and model.config.num_heads == 4  # diffusers' table has 1,001 rows
    x, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, torch.tensor([3, 7, 1000, 0])), reference(x, t, torch.tensor([3, 7, 10, 0])),
                                   rtol=0, atol=0)


def test_dit_pipeline_runs_from_the_exported_folder(tmp_path, capsys):
    vae = _tiny_vae(tmp_path / "vae")
    model = _perturbed(create_model(dict(TINY, num_classes=3)))
    ckpt = save_pretrained(model, tmp_path / "ckpt", class_names=["cat", "dog", "owl"],
                           diffusion={"diffusion_steps": 1000, "noise_schedule": "cosine", "learn_sigma": True},
                           codec={"type": "vae", "source": str(vae), "scaling_factor": 0.5})
    code, out, _ = _export(capsys, ckpt, tmp_path / "pipe")
    assert code == 0 and "DiTPipeline folder" in out
    pipe = diffusers.DiTPipeline.from_pretrained(tmp_path / "pipe")
    assert pipe.labels == {"cat": 0, "dog": 1, "owl": 2} and pipe.vae.config.scaling_factor == 0.5
    from ditkit.diffusion.schedules import cosine_betas
    torch.testing.assert_close(pipe.scheduler.betas.double(), torch.from_numpy(cosine_betas(1000)), rtol=1e-6, atol=0)
    use_dit_timestep_frequencies(pipe)
    x, t = _inputs()
    with torch.no_grad():  # the pipeline's transformer is ditkit's model; ditkit's null class 3 is its 1000
        got = pipe.transformer(x, timestep=t, class_labels=torch.tensor([0, 2, 1000, 1])).sample
        torch.testing.assert_close(got, model(x, t, torch.tensor([0, 2, 3, 1])), rtol=0, atol=1e-5)
    images = pipe(class_labels=[0, 2], guidance_scale=4.0, num_inference_steps=2, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    # and ditkit samples from the same folder (VAE from its vae/ folder, offline)
    code = main(["sample", "--checkpoint", str(tmp_path / "pipe"), "--num-samples", "2", "--steps", "2",
                 "--out", str(tmp_path / "samples")])
    assert code == 0, capsys.readouterr().err


def test_dit_pipeline_ddim_with_guidance_equals_ditkit_ddim(tmp_path, capsys):
    """The whole diffusers pipeline (DDIM, guidance 4, VAE decode) draws ditkit's images from the same noise."""
    from ditkit.diffusion import create_diffusion
    from ditkit.diffusion.guidance import cfg_denoiser
    from ditkit.diffusion.samplers import ddim_sample

    vae = _tiny_vae(tmp_path / "vae")
    model = _perturbed(create_model(dict(TINY, num_classes=3)))
    ckpt = save_pretrained(model, tmp_path / "ckpt", codec={"type": "vae", "source": str(vae), "scaling_factor": 0.5},
                           diffusion={"diffusion_steps": 1000, "noise_schedule": "linear", "learn_sigma": True})
    assert _export(capsys, ckpt, tmp_path / "pipe")[0] == 0
    pipe = diffusers.DiTPipeline.from_pretrained(tmp_path / "pipe")
    pipe.set_progress_bar_config(disable=True)
    use_dit_timestep_frequencies(pipe)
    images = pipe(class_labels=[0, 2], guidance_scale=4.0, num_inference_steps=5, output_type="pt",
                  generator=torch.Generator().manual_seed(0)).images
    noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # what the pipeline drew
    guided = cfg_denoiser(model, torch.tensor([0, 2, 3, 3]), 4.0)  # 3: ditkit's null class
    latents = ddim_sample(guided, create_diffusion("ddim5"), torch.cat([noise, noise]))[:2]
    with torch.no_grad():
        ours = (pipe.vae.decode(latents / 0.5).sample / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(images, ours, rtol=0, atol=1e-5)


def test_unconditional_model_round_trip(tmp_path, capsys):
    model = _perturbed(create_model(dict(TINY, num_classes=0)))
    ckpt = save_pretrained(model, tmp_path / "ckpt", codec={"type": "pixel", "channels": 4})
    code, out, _ = _export(capsys, ckpt, tmp_path / "dit")
    assert code == 0 and "no VAE" in out and not (tmp_path / "dit" / "model_index.json").exists()
    transformer = _transformer(tmp_path / "dit")
    use_dit_timestep_frequencies(transformer)
    x, t = _inputs()
    with torch.no_grad():  # every label embeds to zero: exactly the unconditional model
        got = transformer(x, timestep=t, class_labels=torch.tensor([0, 5, 999, 1000])).sample
        torch.testing.assert_close(got, model(x, t, None), rtol=0, atol=1e-5)
        back = ditkit.load_model(tmp_path / "dit")
        assert back.config.num_classes == 0 and torch.equal(back(x, t, None), model(x, t, None))


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written
# --------------------------------------------------------------------------------------------


def test_blocks_diffusers_cannot_express_are_refused(tmp_path, capsys):
    for block in ("adaln", "cross-attention", "in-context"):
        ckpt = save_pretrained(create_model(dict(TINY, block=block)), tmp_path / f"ckpt-{block}")
        code, _, err = _export(capsys, ckpt, tmp_path / f"out-{block}")
        assert code == 2 and f"'{block}' block cannot be exported" in err and err.count("\n") == 1
        assert not (tmp_path / f"out-{block}").exists()
    ckpt = save_pretrained(create_model(dict(TINY, mlp_ratio=2.0)), tmp_path / "ckpt-mlp")
    code, _, err = _export(capsys, ckpt, tmp_path / "out-mlp")
    assert code == 2 and "mlp_ratio" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_existing_output_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = _export(capsys, STATE_DICT, out, "--num-heads", "4")
    assert code == 2 and "not an empty folder" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_corrupt_diffusers_folders_are_one_clear_error(tmp_path, capsys):
    assert _export(capsys, STATE_DICT, tmp_path / "dit", "--num-heads", "4")[0] == 0
    weights = tmp_path / "dit" / "transformer" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(DitkitError, match="truncated or corrupt"):
        ditkit.load_model(tmp_path / "dit")
    weights.unlink()
    with pytest.raises(DitkitError, match="no diffusion_pytorch_model.safetensors"):
        ditkit.load_model(tmp_path / "dit")
    weights.write_bytes(data)
    config = tmp_path / "dit" / "transformer" / "ditkit_config.json"
    config.write_text("{not json")
    with pytest.raises(DitkitError, match="as JSON"):
        ditkit.load_model(tmp_path / "dit")
    config.unlink()
    scheduler = tmp_path / "dit" / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({"num_train_timesteps": 1000, "beta_schedule": "scaled_linear",
                                     "beta_start": 0.00085, "beta_end": 0.012}))
    with pytest.raises(DitkitError, match="neither DiT's linear"):
        ditkit.load_model(tmp_path / "dit")
    code = main(["info", str(tmp_path / "dit")])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1
