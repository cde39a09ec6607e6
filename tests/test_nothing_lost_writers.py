"""Every writer of whole folders in ``src/`` refuses a path it did not create (issue 28, acceptance 2).

The source is walked for every call that replaces or removes a folder (``atomic_dir``, ``shutil.rmtree``,
``os.replace`` / ``os.rename`` / ``shutil.move``, ``rmdir``); each call site must be listed in ``WRITERS`` with a
driver that gives it a file, a folder of the user's and (where it takes a folder path) ``.``, and proves it
refuses with one ``DitkitError`` and leaves every file byte-identical. A new writer fails this test until it is
listed — and it can only be listed with a driver that shows it refusing.
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest
import torch

import ditkit
from ditkit.errors import DitkitError

SRC = Path(ditkit.__file__).resolve().parent
MOVERS = {"atomic_dir", "rmtree", "rmdir", "move", "rename", "replace"}  # `replace` only as os.replace


def _removal_calls() -> set[tuple[str, str]]:
    """(file relative to the package, enclosing function) of every folder-replacing or -removing call."""
    found = set()
    for file in SRC.rglob("*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and _is_mover(node.func):
                    found.add((str(file.relative_to(SRC)), func.name))
    return found


def _is_mover(func) -> bool:
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name not in MOVERS:
        return False
    if name in ("replace", "rename", "move"):  # str.replace is everywhere: only os.* / shutil.*
        return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("os", "shutil")
    return True


def snapshot(root: Path) -> dict:
    if root.is_file():
        return {".": root.read_bytes()}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def someone_elses(tmp_path: Path, kind: str) -> Path:
    if kind == "file":
        path = tmp_path / "report.pdf"
        path.write_bytes(b"%PDF-1.4 precious")
        return path
    path = tmp_path / "mine"
    (path / "sub").mkdir(parents=True)
    (path / "thesis.txt").write_text("three years\n")
    (path / "sub" / "x.bin").write_bytes(bytes(range(256)))
    return path


# -- drivers: each calls one writer on `path` ----------------------------------------------------------------------

def _atomic_dir(path):
    from ditkit.fileio import atomic_dir

    with atomic_dir(path, lambda folder: (folder / "marker").is_file()) as tmp:
        (tmp / "marker").write_text("ours")


def _text_cache(path):
    from ditkit.codecs.char_text import CharTextCodec
    from ditkit.codecs.text_cache import TextCache

    cache = TextCache(CharTextCodec(max_length=8))
    cache.encode(["a red circle"])
    cache.save(str(path))


def _uni_folder(path):
    from ditkit.pipelines.uni_folder import write_uni_folder
    from ditkit.pipelines.unidiffuser import UniOutput

    write_uni_folder(UniOutput("t", captions=["a red circle"]), path, {})


def _tiny_dit():
    from ditkit.models import create_model

    return create_model(dict(input_size=8, patch_size=4, in_channels=3, hidden_size=32, depth=1, num_heads=2,
                             num_classes=2, learn_sigma=False))


def _checkpoint(path):
    from ditkit.checkpoints.format import save_pretrained

    save_pretrained(_tiny_dit(), path)


def _uni_checkpoint(path):
    from ditkit.checkpoints.unidiffuser import save_unidiffuser_folder

    save_unidiffuser_folder(path, {"uvit": {}}, {"w": torch.zeros(2)})


def _export(path):
    from ditkit.interop.diffusers import export_diffusers

    export_diffusers(_tiny_dit(), {"codec": {"type": "pixel"}}, path)


def _latent_cache(path):
    from ditkit.data.latents import build_latent_cache

    build_latent_cache(types.SimpleNamespace(flip=False), None, str(path), progress=False)  # refused before reading


def _train_checkpoint(path):
    """TrainState.save (and its pruning): a run whose checkpoint folder holds `path` at the step it saves."""
    from ditkit.training import TrainConfig, train

    checkpoints = path.parent
    if checkpoints.name != "checkpoints":
        pytest.skip("a training checkpoint is a step folder inside a run's checkpoints folder")
    train(TrainConfig(data="mnist", model="DiT-S/4", model_overrides=dict(depth=1, hidden_size=32, num_heads=2),
                      image_size=16, max_steps=1, global_batch_size=2, ckpt_every=1, keep_last=1, sample_every=0,
                      progress=False, threads=1, precision="fp32", out=str(checkpoints.parent)))


def _check_writable(path):
    """build.check_writable removes only the folders its probe created: on `path` it must remove nothing, and
    (not being a writer) it refuses a file where a folder must go."""
    from ditkit.training.build import check_writable

    check_writable(str(path))
    if path.is_dir():
        raise DitkitError("probed (and kept) the folder")  # nothing to refuse: the test checks nothing was lost


WRITERS = {
    ("fileio.py", "atomic_dir"): _atomic_dir,
    ("codecs/text_cache.py", "save"): _text_cache,
    ("pipelines/uni_folder.py", "write_uni_folder"): _uni_folder,
    ("checkpoints/format.py", "save_pretrained"): _checkpoint,
    ("checkpoints/unidiffuser.py", "save_unidiffuser_folder"): _uni_checkpoint,
    ("interop/diffusers.py", "export_diffusers"): _export,
    ("data/latents.py", "build_latent_cache"): _latent_cache,
    ("training/state.py", "save"): _train_checkpoint,
    ("training/build.py", "check_writable"): _check_writable,
}


FILE_WRITERS = {("fileio.py", "atomic_path")}  # replaces one file by design; a folder at its path is refused


def test_every_folder_writer_in_src_is_listed_here():
    found = _removal_calls()
    listed = set(WRITERS) | FILE_WRITERS
    assert found == listed, f"unlisted: {sorted(found - listed)}; gone: {sorted(listed - found)}"


def test_the_file_writer_refuses_a_folder(tmp_path):
    from ditkit.fileio import atomic_write_json

    folder = someone_elses(tmp_path, "user folder")
    before = snapshot(folder)
    with pytest.raises(DitkitError, match="is a folder"):
        atomic_write_json(folder, {"scores": 1})
    assert snapshot(folder) == before


@pytest.mark.parametrize("kind", ["file", "user folder"])
@pytest.mark.parametrize("site", sorted(WRITERS), ids=lambda s: f"{s[0]}:{s[1]}")
def test_each_writer_refuses_a_path_it_did_not_create(site, kind, tmp_path):
    if site == ("training/state.py", "save"):
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        tmp_path = tmp_path / "run" / "checkpoints"
        target = someone_elses(tmp_path, kind).rename(tmp_path / "step-0000001")
    else:
        target = someone_elses(tmp_path, kind)
    before = snapshot(target)
    with pytest.raises(DitkitError) as info:
        WRITERS[site](target)
    assert "\n" not in str(info.value)
    assert snapshot(target) == before
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".")) == []  # no temp left


@pytest.mark.parametrize("site", [s for s in sorted(WRITERS) if s not in {("training/state.py", "save"),
                                                                            ("training/build.py", "check_writable")}],
                         ids=lambda s: f"{s[0]}:{s[1]}")
def test_each_writer_refuses_the_current_folder(site, tmp_path, monkeypatch):
    here = tmp_path / "cwd"
    here.mkdir()
    (here / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(here)
    with pytest.raises(DitkitError, match="current folder|not overwritten|not an empty folder"):
        WRITERS[site](Path("."))
    assert [p.name for p in here.iterdir()] == ["notes.txt"]


def test_pruning_keeps_a_step_folder_that_is_not_a_checkpoint(tmp_path):
    from ditkit.training.state import is_training_checkpoint, list_checkpoints

    (tmp_path / "step-0000000").mkdir()
    (tmp_path / "step-0000000" / "notes.txt").write_text("mine")
    assert list_checkpoints(str(tmp_path)) == [] and not is_training_checkpoint(tmp_path / "step-0000000")
