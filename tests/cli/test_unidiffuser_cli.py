"""``ditkit uni`` end to end on a tiny randomly initialised UniDiffuser saved in our format by the test."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ditkit.cli import main
from ditkit.models.caption_decoder import build_vocab
from ditkit.pipelines.unidiffuser import UniDiffuser


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("uni") / "tiny-uni"
    UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                      text_encoder={"type": "text", "spec": "chars", "max_length": 48}, image_encoder="pooled:2",
                      vocab=build_vocab(["a red circle", "a blue square on the left"]),
                      decoder=dict(width=32, depth=1, heads=2), seed=0).save(path)
    return str(path)


@pytest.fixture()
def image_file(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 4), dtype=np.uint8), "RGBA").save(path)
    return str(path)


def _run(capsys, *argv):
    try:
        code = main(["uni", *argv])
    except SystemExit as exit:  # argparse's own errors (a bad number) exit from inside main
        code = exit.code
    return code, capsys.readouterr()


def test_t2i_writes_images_grid_and_run_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "t2i"
    code, cap = _run(capsys, "t2i", "--prompt", "a red circle", "--prompt", "a blue square", "-n", "2",
                     "--checkpoint", checkpoint, "--steps", "3", "--seed", "7", "--out", str(out))
    assert code == 0, cap.err
    assert sorted(p.name for p in out.iterdir()) == ["0000.png", "0001.png", "0002.png", "0003.png", "grid.png",
                                                     "run.json"]
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == "t2i" and run["seed"] == 7 and run["steps"] == 3 and run["scale"] == 7.0
    assert run["prompts"] == ["a red circle", "a blue square"] and run["ditkit_version"]
    assert run["command"].startswith("ditkit ")
    assert np.asarray(Image.open(out / "0000.png")).shape == (8, 8, 3)
    again = tmp_path / "again"
    assert _run(capsys, "t2i", "--prompt", "a red circle", "--prompt", "a blue square", "-n", "2", "--checkpoint",
                checkpoint, "--steps", "3", "--seed", "7", "--out", str(again))[0] == 0
    for i in range(4):
        assert np.array_equal(np.asarray(Image.open(out / f"{i:04d}.png")), np.asarray(Image.open(again / f"{i:04d}.png")))


def test_i2t_converts_the_image_with_notes_and_writes_captions(checkpoint, image_file, tmp_path, capsys):
    out = tmp_path / "i2t"
    code, cap = _run(capsys, "i2t", "--image", image_file, "--checkpoint", checkpoint, "--steps", "2", "--out", str(out))
    assert code == 0, cap.err
    assert "note: x.png: converted RGBA to RGB" in cap.out and "note: resized 12x10 input image(s) to 8x8" in cap.out
    captions = (out / "captions.txt").read_text().splitlines()
    assert len(captions) == 1 and captions[0] in cap.out
    assert json.loads((out / "run.json").read_text())["notes"][0] == "x.png: converted RGBA to RGB"


@pytest.mark.parametrize("mode,args,files", [
    ("joint", ["-n", "3"], {"0000.png", "0002.png", "grid.png", "captions.txt", "run.json"}),
    ("i", ["-n", "2"], {"0000.png", "0001.png", "grid.png", "run.json"}),
    ("t", ["-n", "2"], {"captions.txt", "run.json"}),
    ("t2i2t", ["--prompt", "a red circle"], {"captions.txt", "run.json"}),
    ("i2t2i", ["--image", "IMAGE"], {"0000.png", "grid.png", "run.json"}),
])
def test_other_modes(checkpoint, image_file, tmp_path, capsys, mode, args, files):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(image_file, "rb").read()[:60])  # a PNG cut short
    args = [image_file if a == "IMAGE" else str(truncated) if a == "TRUNCATED" else a for a in args]
    out = tmp_path / mode
    code, cap = _run(capsys, mode, *args, "--checkpoint", checkpoint, "--steps", "2", "--out", str(out))
    assert code == 0, cap.err
    assert files <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("args,message", [
    (["t2i"], "mode t2i needs prompts"),
    (["i2t", "--prompt", "x"], "mode i2t needs images"),
    (["joint", "--image", "IMAGE"], "mode joint takes no images"),
    (["joint", "--steps", "0"], "must be at least 1"),
    (["i2t", "--image", "missing.png"], "cannot read the image"),
    (["joint", "--uvit", "BAD"], "needs both --uvit and --caption-decoder"),
    (["joint", "-n", "0"], "must be at least 1"),
    (["t2i", "--prompt", "a red circle", "--scale", "nan"], "expected a finite number >= 0"),
    (["t2i", "--prompt", "a red circle " * 20], "tokens long; this model's text encoder reads at most"),
    (["i2t", "--image", "TRUNCATED"], "cannot read the image"),
    (["t", "--sampler", "heun"], "samples with dpm-solver, not 'heun'"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(checkpoint, image_file, tmp_path, capsys, args, message):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(image_file, "rb").read()[:60])  # a PNG cut short
    args = [image_file if a == "IMAGE" else str(truncated) if a == "TRUNCATED" else a for a in args]
    out = tmp_path / "out"
    code, cap = _run(capsys, *args, "--checkpoint", checkpoint, "--out", str(out))
    assert code == 2
    assert message in cap.err and len(cap.err.strip().splitlines()) == 1 and "Traceback" not in cap.err
    assert not out.exists()


def test_official_files_of_the_wrong_shape_are_one_error(tmp_path, capsys):
    bad = {"patch_embed.proj.weight": torch.zeros(8, 4, 2, 2), "pos_embed": torch.zeros(1, 5, 8)}
    torch.save(bad, tmp_path / "uvit.pth")
    torch.save({"x": torch.zeros(1)}, tmp_path / "caption_decoder.pth")
    code, cap = _run(capsys, "joint", "--uvit", str(tmp_path / "uvit.pth"), "--caption-decoder",
                     str(tmp_path / "caption_decoder.pth"), "--out", str(tmp_path / "o"))
    assert code == 2 and "does not fit" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_info_describes_a_unidiffuser_folder_and_dit_commands_point_to_uni(checkpoint, tmp_path, capsys):
    from ditkit.models.uvit import UViTConfig, uvit_flops

    assert main(["info", checkpoint]) == 0
    out = capsys.readouterr().out
    model = UniDiffuser.load(checkpoint)
    uvit_params = sum(v.numel() for v in model.uvit.state_dict().values())
    decoder_params = sum(v.numel() for v in model.caption_decoder.state_dict().values())
    assert f"uvit {uvit_params:,}" in out and f"caption_decoder {decoder_params:,}" in out
    assert "(ditkit UniDiffuser)" in out and "spec=chars" in out
    config = json.loads(open(f"{checkpoint}/config.json").read())
    assert f"Gflops: {uvit_flops(UViTConfig.from_dict(config['uvit'])) / 1e9:.4g} per sample" in out
    assert main(["info", checkpoint, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "ditkit-unidiffuser"
    for argv in (["sample", "--checkpoint", checkpoint, "--prompt", "a red circle", "--out", str(tmp_path / "s")],
                 ["t2i-eval", "--checkpoint", checkpoint, "--num-seen", "1", "--num-held-out", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is a UniDiffuser checkpoint, not a DiT" in err and "ditkit uni MODE --checkpoint" in err
        assert "ditkit uni-eval" in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_a_bundled_unidiffuser_is_found_by_name(checkpoint, tmp_path, monkeypatch, capsys):
    import shutil

    from ditkit.checkpoints import bundled

    models = tmp_path / "models"
    shutil.copytree(checkpoint, models / "tiny-uni-bundled")
    monkeypatch.setattr(bundled, "BUNDLED_MODELS_DIR", models)
    monkeypatch.chdir(tmp_path)  # no folder of that name here: the bundled one is meant
    assert UniDiffuser.load("tiny-uni-bundled") is not None
    code, cap = _run(capsys, "t2i", "--prompt", "a red circle", "--checkpoint", "tiny-uni-bundled", "--steps", "2",
                     "--out", str(tmp_path / "out"))
    assert code == 0, cap.err
    assert main(["info", "tiny-uni-bundled"]) == 0
    assert "(ditkit UniDiffuser)" in capsys.readouterr().out


def test_the_modes_figure_script_draws_every_mode(checkpoint, tmp_path, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    out = tmp_path / "modes.png"
    script = Path(__file__).resolve().parents[2] / "examples" / "uni_modes_figure.py"
    monkeypatch.setattr(sys, "argv", ["uni_modes_figure.py", "--checkpoint", checkpoint, "--out", str(out), "-n", "2",
                                      "--steps", "2"])
    runpy.run_path(str(script), run_name="__main__")
    width, height = Image.open(out).size
    assert height > width  # seven rows of three panels
    assert [p.name for p in tmp_path.iterdir()] == ["modes.png"]  # no temporary file left


def test_a_dit_checkpoint_given_to_uni_commands_names_the_dit_commands(tmp_path, capsys):
    for argv in (["uni", "joint", "--checkpoint", "shapes-t2i", "--out", str(tmp_path / "u")],
                 ["uni-eval", "--checkpoint", "shapes-t2i", "-n", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is a DiT checkpoint, not a UniDiffuser" in err and "ditkit sample --checkpoint" in err
        assert "ditkit t2i-eval" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "u").exists()
