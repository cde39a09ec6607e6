"""Nothing a user owns is ever deleted (issue 28, items 1 and 2): ``--text-cache`` and ``ditkit uni --out`` given
a file, a folder of the user's, ``.`` or a folder another ditkit command wrote answer one line, exit 2, and leave
every file byte-identical; only their own earlier output is replaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ditkit.cli import main
from ditkit.models.caption_decoder import build_vocab
from ditkit.pipelines.unidiffuser import UniDiffuser


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` (or ``root`` itself, a file) → its bytes (None for folders)."""
    root = Path(root)
    if root.is_file():
        return {".": root.read_bytes()}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def user_folder(path: Path) -> Path:
    """A folder of someone's own: a thesis and a subfolder."""
    (path / "sub").mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work\n")
    (path / "sub" / "data.csv").write_bytes(b"a,b\n1,2\n")
    return path


@pytest.fixture(scope="module")
def sample_output(tmp_path_factory) -> Path:
    """A real ``ditkit sample`` output folder (run.json, PNGs, samples.npz): another command's folder."""
    out = tmp_path_factory.mktemp("sample") / "samples"
    assert main(["sample", "--classes", "3,5", "--steps", "2", "--npz", "--out", str(out), "--device", "cpu"]) == 0
    return out


def targets(kind: str, tmp_path: Path, sample_output: Path, monkeypatch) -> Path:
    """The path to give the command, set up as ``kind``."""
    if kind == "file":
        path = tmp_path / "notes.txt"
        path.write_text("not a folder\n")
        return path
    if kind == "user folder":
        return user_folder(tmp_path / "mine")
    if kind == "dot":
        here = user_folder(tmp_path / "cwd")
        monkeypatch.chdir(here)
        return Path(".")
    path = tmp_path / "samples"
    shutil.copytree(sample_output, path)
    return path


KINDS = ["file", "user folder", "dot", "sample output"]


# -- item 1: --text-cache ------------------------------------------------------------------------------------------

def _train_text(encoder: str, out: Path, cache: Path, *extra) -> int:
    return main(["train", "--data", "shapes", "--text-encoder", encoder, "--model", "DiT-S/4", "--depth", "1",
                 "--hidden-size", "32", "--num-heads", "2", "--image-size", "16", "--max-steps", "2",
                 "--global-batch-size", "4", "--ckpt-every", "2", "--sample-every", "0", "--threads", "1",
                 "--out", str(out), "--text-cache", str(cache), "--no-progress", *extra])


@pytest.mark.parametrize("kind", KINDS)
def test_text_cache_never_replaces_what_is_not_a_text_cache(kind, tmp_path, sample_output, tiny_bert, monkeypatch,
                                                            capsys):
    cache = targets(kind, tmp_path, sample_output, monkeypatch)
    watched = Path.cwd() if kind == "dot" else cache
    before = snapshot(watched)
    run = tmp_path / "run"
    assert _train_text(tiny_bert, run, cache) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ditkit train: error: ") and "was not overwritten" in err and str(cache) in err
    assert snapshot(watched) == before
    assert not run.exists()  # refused before the run folder was written


def test_text_cache_is_created_then_reused_and_replaced_as_its_own(tmp_path, tiny_bert):
    cache = tmp_path / "cache"
    assert _train_text(tiny_bert, tmp_path / "a", cache) == 0
    meta = json.loads((cache / "cache.json").read_text())
    assert meta["format"] == "ditkit-text-cache" and meta["captions"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train_text(tiny_bert, tmp_path / "b", cache, "--seed", "1") == 0  # its own cache: reused, grown, replaced
    assert _train_text(tiny_bert, tmp_path / "c", empty) == 0  # an empty folder: filled
    assert (empty / "cache.json").is_file()


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("decoder")
    assert main(["train", "--data", "shapes", "--image-size", "16", "--text-encoder", "chars", "--model",
                 "caption-decoder", "--hidden-size", "32", "--depth", "1", "--num-heads", "2", "--max-steps", "1",
                 "--global-batch-size", "4", "--ckpt-every", "1", "--sample-every", "0", "--threads", "1",
                 "--out", str(out), "--no-progress"]) == 0
    return str(out / "checkpoints" / "step-0000001")


@pytest.mark.parametrize("kind", ["file", "user folder", "sample output"])
def test_uvit_text_cache_refuses_a_path_it_did_not_write(kind, tmp_path, sample_output, decoder, monkeypatch, capsys):
    cache = targets(kind, tmp_path, sample_output, monkeypatch)
    before = snapshot(cache)
    code = main(["train", "--data", "shapes", "--image-size", "16", "--text-encoder", "chars", "--model", "uvit-tiny",
                 "--hidden-size", "32", "--depth", "2", "--num-heads", "2", "--patch-size", "4", "--max-steps", "1",
                 "--global-batch-size", "4", "--ckpt-every", "1", "--sample-every", "0", "--threads", "1",
                 "--init-from", decoder, "--text-cache", str(cache), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]  # after the note on the barely trained decoder
    assert last.startswith("ditkit train: error: ") and err.count("error") == 1
    assert "U-ViT text-token table" in last and "was not overwritten" in last
    assert snapshot(cache) == before
    assert not (tmp_path / "run").exists()


# -- item 2: ditkit uni --out --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uni_checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("uni") / "tiny-uni"
    UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                      text_encoder={"type": "text", "spec": "chars", "max_length": 12}, image_encoder="pooled:2",
                      vocab=build_vocab(["a red circle", "a blue square on the left"]),
                      decoder=dict(width=32, depth=1, heads=2), seed=0).save(path)
    return str(path)


def _uni(checkpoint: str, out, *extra) -> int:
    return main(["uni", "t", "-n", "1", "--checkpoint", checkpoint, "--steps", "2", "--out", str(out),
                 "--no-progress", *extra])


@pytest.mark.parametrize("kind", KINDS)
def test_uni_out_never_replaces_what_is_not_a_uni_output(kind, tmp_path, sample_output, uni_checkpoint, monkeypatch,
                                                          capsys):
    out = targets(kind, tmp_path, sample_output, monkeypatch)
    watched = Path.cwd() if kind == "dot" else out
    before = snapshot(watched)
    assert _uni(uni_checkpoint, out) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("ditkit uni: error: ")
    assert "was not overwritten" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # refused before any work
    assert snapshot(watched) == before
    assert not [p for p in (watched if watched.is_dir() else watched.parent).iterdir() if p.name.startswith(".")]


def test_uni_out_replaces_its_own_earlier_output_and_an_empty_folder(tmp_path, uni_checkpoint, capsys):
    out = tmp_path / "uni"
    assert _uni(uni_checkpoint, out) == 0
    assert json.loads((out / "run.json").read_text())["format"] == "ditkit-uni-output"
    assert _uni(uni_checkpoint, out, "--seed", "3") == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 3
    legacy = tmp_path / "legacy"  # written before run.json named its format
    legacy.mkdir()
    (legacy / "captions.txt").write_text("old\n")
    (legacy / "run.json").write_text(json.dumps({"mode": "t", "notes": [], "ditkit_version": "0.1.0"}))
    assert _uni(uni_checkpoint, legacy) == 0
    assert json.loads((legacy / "run.json").read_text())["format"] == "ditkit-uni-output"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _uni(uni_checkpoint, empty) == 0 and (empty / "run.json").is_file()


def test_a_sample_folder_with_a_run_json_is_not_a_uni_output(sample_output):
    from ditkit.pipelines.uni_folder import is_uni_output

    assert (sample_output / "run.json").is_file() and not is_uni_output(sample_output)
    image = np.asarray(Image.open(next((sample_output / "samples").iterdir())))
    assert image.dtype == np.uint8


@pytest.mark.parametrize("name", ["grid.png", "samples.npz"])
def test_sample_refuses_a_folder_whose_files_it_would_replace(tmp_path, capsys, name):
    """A user's folder holding a file of the name ``ditkit sample`` writes (and no run record of ours): one
    line, exit 2, the file byte-identical — the run would otherwise overwrite it."""
    from ditkit.cli import main

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / name).write_bytes(b"the user's own file")
    (folder / "notes.txt").write_text("keep me")
    code = main(["sample", "--num-samples", "2", "--steps", "2", "--out", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and f"already holds {name}" in err and err.count("\n") == 1
    assert (folder / name).read_bytes() == b"the user's own file" and sorted(p.name for p in folder.iterdir()) == \
        sorted([name, "notes.txt"])
