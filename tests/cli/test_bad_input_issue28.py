"""Issue 28, items 3-5 and 7-9, through the CLI: each bad input is one line, a non-zero exit, no traceback, and
every file that was there before is byte-identical afterwards; long commands show progress off a terminal."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ditkit.cli import main
from ditkit.data.captions import ComposedShapesDataset
from ditkit.models.caption_decoder import build_vocab
from ditkit.pipelines.unidiffuser import UniDiffuser


def snapshot(root: Path) -> dict:
    root = Path(root)
    if root.is_file():
        return {".": root.read_bytes()}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def one_error(capsys, code: int, command: str) -> str:
    """The run's single error line (asserted: exit 2, one line, no traceback)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"ditkit {command}: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.fixture(scope="module")
def uni16(tmp_path_factory) -> str:
    """A tiny UniDiffuser of the captioned shapes (16 px, RGB): what uni-eval scores."""
    captions = [ComposedShapesDataset(16, "train", length=100).caption(i) for i in range(100)]
    path = tmp_path_factory.mktemp("uni") / "tiny16"
    UniDiffuser.build(image_size=16, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8, patch_size=4),
                      text_encoder={"type": "text", "spec": "chars", "max_length": 24}, image_encoder="pooled:2",
                      vocab=build_vocab(captions), decoder=dict(width=32, depth=1, heads=2)).eval().save(path)
    return str(path)


@pytest.fixture()
def read_only(tmp_path):
    """A folder nobody may write into (chmod; as root, the immutable attribute); skipped where neither holds."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "kept.txt").write_text("mine\n")
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        (folder / "probe").write_text("x")
        (folder / "probe").unlink()
        pytest.skip("cannot make a read-only folder here")
    except OSError:
        pass
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


# -- item 5: read-only outputs and folders given for files, refused before the work ------------------------------

def _read_only_commands(folder: Path, uni: str, spec: Path, study: Path) -> dict:
    out = str(folder / "new")
    return {
        "sample": ["sample", "--classes", "1", "--steps", "1", "--out", out],
        "uni": ["uni", "t", "-n", "1", "--checkpoint", uni, "--steps", "1", "--out", out],
        "export": ["export", "mnist-dit", "--out", out],
        "eval": ["eval", "--samples", "mnist:test", "--reference", "mnist", "--out", out + ".json"],
        "t2i-eval": ["t2i-eval", "--num-seen", "1", "--num-held-out", "0", "--steps", "1", "--out", out + ".json"],
        "uni-eval": ["uni-eval", "--checkpoint", uni, "-n", "1", "--steps", "1", "--modes", "i2t",
                     "--out", out + ".json"],
        "study run": ["study", "run", str(spec), "--out", out],
        "study report": ["study", "report", str(study), "--out", out],
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study file and a laid-out (untrained) study folder of it."""
    from ditkit.study import load_spec
    from ditkit.study.runner import prepare

    root = tmp_path_factory.mktemp("study")
    spec = root / "tiny.toml"
    spec.write_text(textwrap.dedent("""
        [study]
        name = "tiny"
        data = "mnist"
        image_size = 32
        [budget]
        steps = 2
        [sizes]
        T = {hidden_size = 32, depth = 1, num_heads = 2}
        [[grid]]
        sizes = ["T"]
        patch_sizes = [8]
        """))
    prepare(load_spec(spec), str(root / "study"))
    return spec, root / "study"


@pytest.mark.parametrize("command", ["sample", "uni", "export", "eval", "t2i-eval", "uni-eval", "study run",
                                     "study report"])
def test_a_read_only_out_is_one_line_before_any_work(command, read_only, uni16, study, capsys):
    argv = _read_only_commands(read_only, uni16, *study)[command]
    before = snapshot(read_only)
    line = one_error(capsys, main(argv), command.split()[0])
    assert "locked" in line and ("not writable" in line or "Permission denied" in line or "Operation not" in line)
    assert capsys.readouterr().out == ""
    assert snapshot(read_only) == before


@pytest.mark.parametrize("command", ["eval", "t2i-eval", "uni-eval"])
def test_a_folder_given_as_the_json_out_is_refused_first(command, tmp_path, uni16, study, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "old.json").write_text("{}")
    argv = _read_only_commands(tmp_path, uni16, *study)[command]
    argv[argv.index("--out") + 1] = str(folder)
    before = snapshot(folder)
    line = one_error(capsys, main(argv), command)
    assert "is a folder; give the file to write" in line
    assert snapshot(folder) == before


def test_study_and_report_folders_are_only_their_own(tmp_path, study, capsys):
    spec, laid_out = study
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.md").write_text("my own results\n")
    before = snapshot(mine)
    assert "not overwritten" in one_error(capsys, main(["study", "run", str(spec), "--out", str(mine)]), "study")
    assert "not overwritten" in one_error(capsys, main(["study", "report", str(laid_out), "--out", str(mine)]),
                                          "study")
    assert snapshot(mine) == before
    assert main(["study", "report", str(laid_out), "--out", str(tmp_path / "report")]) == 0
    assert main(["study", "report", str(laid_out), "--out", str(tmp_path / "report")]) == 0  # its own: rewritten


# -- item 3: 16-bit images are scaled, not clipped to white -------------------------------------------------------

def _png16(path: Path, size=(12, 10)) -> np.ndarray:
    values = np.linspace(0, 65535, size[0] * size[1]).reshape(size).astype(np.uint16)
    Image.fromarray(values).save(path)  # a 16-bit grey PNG
    return values


def test_a_16_bit_image_is_scaled_to_8_bits_everywhere(tmp_path):
    from ditkit.evaluation.sources import folder_images
    from ditkit.pipelines.images import read_png
    from ditkit.pipelines.uni_folder import read_images

    values = _png16(tmp_path / "deep.png")
    expected = np.rint(values / 257.0).astype(np.uint8)
    assert np.array_equal(read_png(tmp_path / "deep.png")[..., 0], expected)
    assert np.array_equal(folder_images(str(tmp_path)).images[0, ..., 0], expected)
    notes: list[str] = []
    x = read_images([tmp_path / "deep.png"], notes)
    assert np.array_equal(np.rint((x[0, 0].numpy() + 1) * 127.5).astype(np.uint8), expected)
    assert notes == ["deep.png: converted I;16 to L (16-bit scaled to 8-bit)"]
    assert (expected == 255).mean() < 0.05  # PIL's own convert made 99.9% white


def test_uni_i2t_takes_a_16_bit_image_and_images_of_different_sizes(tmp_path, uni16, capsys):
    _png16(tmp_path / "deep.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "wide.png")
    out = tmp_path / "out"
    assert main(["uni", "i2t", "--image", str(tmp_path / "deep.png"), "--image", str(tmp_path / "wide.png"),
                 "--checkpoint", uni16, "--steps", "1", "--beam-size", "1", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "16-bit scaled to 8-bit" in printed and "resized 20x30" in printed
    assert len((out / "captions.txt").read_text().splitlines()) == 2


# -- item 4: NaN and negative guidance scales ---------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["nan", "-1", "inf"])
@pytest.mark.parametrize("command", ["uni", "uni-eval"])
def test_a_guidance_scale_must_be_finite_and_not_negative(command, scale, tmp_path, uni16, capsys):
    argv = (["uni", "t", "-n", "1", "--out", str(tmp_path / "u")] if command == "uni" else ["uni-eval", "-n", "1"])
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--checkpoint", uni16, "--steps", "1", f"--scale={scale}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "expected a finite number >= 0" in err and scale in err
    assert not (tmp_path / "u").exists()


# -- item 7: a stage-1 caption decoder is named where it is refused -----------------------------------------------

@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("decoder")
    assert main(["train", "--data", "shapes", "--image-size", "16", "--text-encoder", "chars", "--model",
                 "caption-decoder", "--hidden-size", "32", "--depth", "1", "--num-heads", "2", "--max-steps", "1",
                 "--global-batch-size", "4", "--ckpt-every", "1", "--sample-every", "0", "--threads", "1",
                 "--out", str(out / "run"), "--no-progress"]) == 0
    return str(out / "run" / "checkpoints" / "step-0000001")


@pytest.mark.parametrize("argv", [["info", "{d}"], ["sample", "--checkpoint", "{d}", "--out", "{o}"],
                                  ["export", "{d}", "--out", "{o}"], ["uni", "t", "--checkpoint", "{d}", "--out", "{o}"]])
def test_a_caption_decoder_checkpoint_is_named_and_pointed_to_its_use(argv, decoder, tmp_path, capsys):
    argv = [a.format(d=decoder, o=tmp_path / "out") for a in argv]
    before = snapshot(Path(decoder))
    line = one_error(capsys, main(argv), argv[0])
    assert "is a UniDiffuser caption decoder (stage 1" in line and f"--init-from {decoder}" in line
    assert snapshot(Path(decoder)) == before and not (tmp_path / "out").exists()


def test_the_app_does_not_offer_a_caption_decoder(decoder):
    from ditkit.app.models import recent_checkpoints

    run = Path(decoder).parent.parent
    assert recent_checkpoints(run) == []


def test_errors_about_bundled_models_name_them(tmp_path, capsys):
    line = one_error(capsys, main(["uni", "joint", "--checkpoint", "shapes-t2i", "--out", str(tmp_path / "u")]),
                     "uni")
    assert "shapes-t2i is a DiT checkpoint" in line and "assets" not in line


# -- item 8: the smaller ones -------------------------------------------------------------------------------------

def test_uni_eval_with_no_modes_or_a_file_that_is_no_classifier(tmp_path, uni16, capsys):
    line = one_error(capsys, main(["uni-eval", "--checkpoint", uni16, "--modes", ""]), "uni-eval")
    assert "--modes names no mode" in line
    fake = tmp_path / "clf.safetensors"
    fake.write_bytes(b"not a classifier")
    (tmp_path / "clf.json").write_text("{}")
    before = snapshot(tmp_path)
    line = one_error(capsys, main(["uni-eval", "--checkpoint", uni16, "--modes", "t2i", "-n", "1", "--classifier",
                                   str(fake)]), "uni-eval")
    assert f"--classifier {fake} is not a shapes classifier" in line and "not found" not in line
    (tmp_path / "clf.json").unlink()
    line = one_error(capsys, main(["uni-eval", "--checkpoint", uni16, "--modes", "t2i", "-n", "1", "--classifier",
                                   str(fake)]), "uni-eval")
    assert "is not a shapes classifier" in line and "clf.json" in line
    assert snapshot(fake) == {".": before["clf.safetensors"]}  # only read


def test_sample_refuses_a_uni_folder_and_a_text_model_without_prompts(tmp_path, uni16, capsys):
    uni_out = tmp_path / "uni"
    assert main(["uni", "t", "-n", "1", "--checkpoint", uni16, "--steps", "1", "--out", str(uni_out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    before = snapshot(uni_out)
    line = one_error(capsys, main(["sample", "--classes", "1", "--steps", "1", "--out", str(uni_out)]), "sample")
    assert "is a `ditkit uni` output folder, not a `ditkit sample` one" in line
    assert snapshot(uni_out) == before
    line = one_error(capsys, main(["sample", "--checkpoint", "shapes-t2i", "--out", str(tmp_path / "s")]), "sample")
    assert "shapes-t2i is a text-to-image model: give --prompt" in line
    assert not (tmp_path / "s").exists()


def test_two_stage_modes_keep_their_intermediate_result(tmp_path, uni16, capsys):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    i2t2i, t2i2t = tmp_path / "i2t2i", tmp_path / "t2i2t"
    assert main(["uni", "i2t2i", "--image", str(tmp_path / "x.png"), "--checkpoint", uni16, "--steps", "1",
                 "--beam-size", "1", "--out", str(i2t2i), "--no-progress"]) == 0
    assert main(["uni", "t2i2t", "--prompt", "a red circle", "--checkpoint", uni16, "--steps", "1",
                 "--beam-size", "1", "--out", str(t2i2t), "--no-progress"]) == 0
    assert (i2t2i / "0000.png").is_file() and len((i2t2i / "captions.txt").read_text().splitlines()) == 1
    assert "captions.txt" in json.loads((i2t2i / "run.json").read_text())["intermediate"]
    assert (t2i2t / "0000.png").is_file() and (t2i2t / "captions.txt").is_file()
    assert "images" in json.loads((t2i2t / "run.json").read_text())["intermediate"]


def test_the_study_hint_quotes_a_path_with_spaces(monkeypatch, tmp_path, study, capsys):
    import ditkit.study as study_module

    spec, _ = study
    monkeypatch.setattr(study_module, "run_study", lambda spec, out, **_: {})
    out = tmp_path / "my study"
    assert main(["study", "run", str(spec), "--out", str(out)]) == 0
    hint = capsys.readouterr().out.strip().splitlines()[-1]
    assert hint.endswith(f"report: ditkit study report {shlex.quote(str(out))}") and "'" in hint


def test_a_handled_error_in_the_app_prints_no_traceback():
    gr = pytest.importorskip("gradio")
    from ditkit.app.ui import _shown_errors
    from ditkit.errors import DitkitError

    def bad():
        raise DitkitError("choose a model")

    with pytest.raises(gr.Error) as info:
        _shown_errors(bad)()
    assert info.value.message == "choose a model" and info.value.print_exception is False


# -- item 9: progress off a terminal ------------------------------------------------------------------------------

def test_uni_and_uni_eval_and_t2i_eval_show_progress_in_plain_lines(tmp_path, uni16, capsys):
    assert main(["uni", "t", "-n", "1", "--checkpoint", uni16, "--steps", "4", "--out", str(tmp_path / "u")]) == 0
    err = capsys.readouterr().err
    assert "uni t" in err and "4/4" in err and "\r" not in err
    assert main(["uni-eval", "--checkpoint", uni16, "--modes", "i2t", "-n", "2", "--steps", "1", "--batch-size", "1",
                 "--beam-size", "1"]) == 0
    err = capsys.readouterr().err
    assert "uni-eval i2t" in err and "2/2" in err and "\r" not in err
    assert main(["t2i-eval", "--num-seen", "2", "--num-held-out", "0", "--steps", "2", "--out",
                 str(tmp_path / "t.json")]) == 0
    err = capsys.readouterr().err
    assert "dpm++" in err and "/2 [" in err and "\r" not in err  # the sampler's steps (one batch of 2 prompts)
    assert main(["uni", "t", "-n", "1", "--checkpoint", uni16, "--steps", "2", "--out", str(tmp_path / "u"),
                 "--no-progress"]) == 0
    assert "uni t" not in capsys.readouterr().err
