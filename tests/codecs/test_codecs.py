"""Codecs: pixel identity and the SD-VAE wrapper, tested on a tiny AutoencoderKL built here."""

from __future__ import annotations

import pytest
import torch

from ditkit.codecs import PixelCodec, VAECodec, codec_from_config, make_codec
from ditkit.errors import DitkitError


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    folder = tmp_path_factory.mktemp("vae") / "tiny-vae"
    vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vae_codec(tiny_vae_dir):
    return VAECodec(tiny_vae_dir)


def _images(n=2, size=16, channels=3):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_pixel_codec_is_identity_and_round_trips_config():
    codec = make_codec("none", image_channels=1)
    assert isinstance(codec, PixelCodec)
    assert (codec.latent_channels, codec.image_channels, codec.downsample) == (1, 1, 1)
    x = _images(channels=1)
    assert torch.equal(codec.decode(codec.encode(x)), x)
    again = codec_from_config(codec.to_config())
    assert isinstance(again, PixelCodec) and again.image_channels == 1
    with pytest.raises(DitkitError):
        codec.encode(_images(channels=3))


def test_vae_codec_loads_local_folder_shapes_and_config(tiny_vae_dir):
    codec = make_codec(str(tiny_vae_dir))
    assert isinstance(codec, VAECodec)
    # two encoder blocks → one halving; 4 latent channels
    assert (codec.latent_channels, codec.image_channels, codec.downsample) == (4, 3, 2)
    assert codec.scaling_factor == pytest.approx(0.18215)
    z = codec.encode(_images(), generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 4, 8, 8)
    out = codec.decode(z)
    assert out.shape == (2, 3, 16, 16)
    assert torch.isfinite(out).all()
    rebuilt = codec_from_config(codec.to_config())
    assert isinstance(rebuilt, VAECodec) and rebuilt.scaling_factor == codec.scaling_factor


def test_vae_codec_scales_and_samples_like_diffusers(tiny_vae_dir, vae_codec):
    from diffusers import AutoencoderKL

    codec = vae_codec
    raw = AutoencoderKL.from_pretrained(tiny_vae_dir).eval()
    x = _images()
    with torch.no_grad():
        dist = raw.encode(x).latent_dist
        expected = dist.sample(generator=torch.Generator().manual_seed(3)) * 0.18215
        mean = dist.mean
    z = codec.encode(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, expected)
    # a sample, not the mean (the paper's training encodes by sampling)
    assert not torch.allclose(z, mean * 0.18215)
    # decode undoes the scaling before the VAE decoder
    with torch.no_grad():
        torch.testing.assert_close(codec.decode(z), raw.decode(expected / 0.18215).sample)


def test_vae_codec_is_reproducible_with_a_generator(vae_codec):
    codec = vae_codec
    x = _images()
    a = codec.encode(x, generator=torch.Generator().manual_seed(7))
    b = codec.encode(x, generator=torch.Generator().manual_seed(7))
    c = codec.encode(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_vae_codec_scaling_factor_override(vae_codec):
    codec = VAECodec(vae_codec.vae, scaling_factor=0.5)  # wraps an already built AutoencoderKL
    x = _images()
    z = codec.encode(x, generator=torch.Generator().manual_seed(0))
    ref = vae_codec.encode(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, ref / 0.18215 * 0.5)


def test_vae_codec_rejects_sizes_it_cannot_represent(vae_codec):
    codec = vae_codec
    with pytest.raises(DitkitError, match="multiple"):
        codec.encode(_images(size=15))
    with pytest.raises(DitkitError, match="latents"):
        codec.decode(torch.zeros(1, 3, 8, 8))


def test_bad_vae_specs_raise_ditkit_error(tmp_path):
    with pytest.raises(DitkitError, match="No VAE folder"):
        make_codec(str(tmp_path / "missing" / "deeper" / "vae"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DitkitError, match="not a VAE folder"):
        make_codec(str(tmp_path / "notes.txt"))
    with pytest.raises(DitkitError, match="not a VAE folder"):
        make_codec(str(tmp_path))  # a folder without config.json
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    with pytest.raises(DitkitError, match="Could not load the VAE folder"):
        make_codec(str(broken))
    with pytest.raises(DitkitError, match="Unknown codec type"):
        codec_from_config({"type": "jpeg"})


def test_unreachable_hub_gives_one_clear_error(monkeypatch):
    """Offline: a hub id fails with a DitkitError that says to pass a local folder."""
    from diffusers import AutoencoderKL

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this model")

    monkeypatch.setattr(AutoencoderKL, "from_pretrained", offline)
    with pytest.raises(DitkitError, match="local folder") as info:
        make_codec("ema")
    assert "stabilityai/sd-vae-ft-ema" in str(info.value)
    assert "\n" not in str(info.value)
