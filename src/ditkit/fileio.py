"""Atomic writes: a crash or error never leaves a half-written file or folder under its final name.

Everything ditkit writes that a later run reads (checkpoints, samples, caches, reports) goes through here.
The readers beside them (``read_json``, ``read_safetensors``) turn an unreadable file into one readable
``DitkitError``; ``first_line`` shortens a library's exception for such a message.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import DitkitError


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.
    A folder at ``path`` is refused (one ``DitkitError``), never replaced.

    ``suffix`` keeps the extension for writers that look at it (``savefig``, ``np.savez``).
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise DitkitError(f"{path} is a folder, so it was not overwritten; give the path of a file to write.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give what a plain open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable) -> None:
    """Call ``write(binary_file_object)`` on a temp file beside ``path``, then move it into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def check_replaceable(path: str | os.PathLike, owned: Callable[[Path], bool] | None = None,
                      what: str = "a folder ditkit wrote") -> Path:
    """Refuse, with one ``DitkitError`` line, to replace ``path`` unless ditkit may: it is absent, an empty
    folder, or a folder ``owned(path)`` recognises by its own marker (which ditkit command wrote it).

    A file, a symlink, a folder of anyone else's and the current folder (or one holding it) are never replaced:
    nothing a user owns is ever deleted. Call it before the work, so bad input costs nothing.
    """
    path = Path(path).expanduser()
    if not os.path.lexists(path):
        return path
    here = Path.cwd().resolve()
    if path.resolve() == here or path.resolve() in here.parents:
        raise DitkitError(f"{path} is the current folder (or holds it), so it was not overwritten; "
                          f"choose a new folder for {what}.")
    if path.is_symlink() or not path.is_dir():
        raise DitkitError(f"{path} is a file, not {what}, so it was not overwritten; choose a new folder.")
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise DitkitError(f"cannot read the folder {path} ({exc.strerror or exc}).") from None
    if not empty and not (owned is not None and owned(path)):
        raise DitkitError(f"{path} already holds files and is not {what}, so it was not overwritten (ditkit replaces "
                          "only a folder it wrote itself); choose a new or empty folder.")
    return path


@contextmanager
def atomic_dir(path: str | os.PathLike, owned: Callable[[Path], bool] | None = None,
               what: str = "a folder ditkit wrote") -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it takes ``path``'s place.

    ``path`` may be absent, an empty folder, or a folder ``owned(path)`` recognises as this writer's own
    (``check_replaceable``, checked before the body runs and again before the swap); anything else is refused.
    An existing folder at ``path`` is replaced whole only once the new one is complete (it is renamed aside,
    the new one renamed in, then the old one removed), so a reader sees the old or the new, never a mixture.
    """
    path = check_replaceable(path, owned, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        _apply_umask(tmp)
        check_replaceable(path, owned, what)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail now, not after the work, when a result file cannot be written at ``path`` (a folder is there, its
    folder is missing or read-only). Creates nothing."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise DitkitError(f"{flag} {path} is a folder; give the file to write, e.g. {path / 'scores.json'}.")
    if not path.parent.resolve().is_dir():
        raise DitkitError(f"cannot write {flag} {path}: folder {path.parent} does not exist.")
    _probe(path.parent, f"{flag} {path}")
    return path


def check_writable(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Fail now, not after the work, when the folder ``path`` (or, when absent, the folder that will hold it)
    cannot be written; a file at ``path`` or above it is refused too. Creates nothing."""
    path = Path(path).expanduser()
    probe = path.absolute()
    while not probe.is_dir():
        if os.path.lexists(probe):
            raise DitkitError(f"cannot write {flag} {path}: {probe} is a file, not a folder.")
        probe = probe.parent
    _probe(probe, f"{flag} {path}")
    return path


def _probe(folder: Path, what: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ditkit-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise DitkitError(f"cannot write {what}: {folder} is not writable ({exc.strerror or exc}).") from None


def _apply_umask(folder: Path) -> None:
    """mkdtemp makes 0700 folders (and safetensors writes 0600 files); give the folder, its subfolders and
    files the permissions a plain mkdir / open would."""
    umask = _umask()
    os.chmod(folder, 0o777 & ~umask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# --------------------------------------------------------------------------------------------
# Reading: an unreadable file is one readable error
# --------------------------------------------------------------------------------------------


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can be pages long)."""
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def read_json(file: str | os.PathLike) -> dict:
    """A JSON object from ``file``; anything else is one readable error."""
    try:
        data = json.loads(Path(file).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DitkitError(f"Could not read {file} as JSON ({first_line(exc)}).") from None
    if not isinstance(data, dict):
        raise DitkitError(f"{file} does not hold a JSON object.")
    return data


def read_safetensors(path: str | os.PathLike) -> dict:
    """The tensors of a safetensors file, on the CPU; a missing, truncated or foreign file is one readable error."""
    from safetensors.torch import load_file  # torch loads only where tensors are read

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError
        raise DitkitError(
            f"Could not read {path}: it is not a safetensors file, or it is truncated or corrupt "
            f"({first_line(exc)})."
        ) from None
