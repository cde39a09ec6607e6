"""The shared helpers for atomic writes and the [-1, 1] ↔ uint8 image mapping."""

import numpy as np
import pytest
import torch

from ditkit.fileio import atomic_dir, atomic_path, atomic_write_json, atomic_write_text
from ditkit.imaging import IMAGE_EXTENSIONS, from_uint8, to_uint8


def test_atomic_text_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_json(target, {"two": 2})
    assert target.read_text() == '{\n  "two": 2\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_atomic_path_error_keeps_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "ckpt"
    ours = lambda folder: (folder / "x").is_file() or (folder / "y").is_file()  # noqa: E731 (the writer's marker)
    with atomic_dir(target, ours) as d:
        (d / "x").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target, ours) as d:
            (d / "y").write_text("2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["x"]
    with atomic_dir(target, ours) as d:
        (d / "y").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_uint8_round_trip():
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    x = from_uint8(levels)
    assert x.shape == (1, 3, 16, 16) and x.min() == -1 and x.max() == 1
    assert np.array_equal(to_uint8(x), levels)
    assert to_uint8(torch.full((3, 2, 2), 5.0)).max() == 255  # clamped
    assert ".png" in IMAGE_EXTENSIONS


def test_atomic_files_get_plain_permissions(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)
