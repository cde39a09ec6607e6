"""The published DiT-XL/2 checkpoints, the download cache, and the project's one downloader.

``download_file`` is what every download in ditkit goes through (these checkpoints, the FID Inception
weights): a progress bar, a temporary file renamed into place only once ``verify`` accepts it, and one
readable error when the server cannot be reached.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import DitkitError
from ..fileio import atomic_path
from ..models.dit import DiTConfig, preset_config
from .format import first_line
from .inference import check_fits
from .official import is_state_dict, safe_torch_load

OFFICIAL_URL = "https://dl.fbaipublicfiles.com/DiT/models/"
# No checksums are published for these files, so a download is verified by loading it safely and
# checking every key and shape against the DiT-XL/2 model it must be.
OFFICIAL_CHECKPOINTS = {
    "DiT-XL-2-256x256.pt": dict(preset_config("DiT-XL/2"), input_size=32, in_channels=4, num_classes=1000),
    "DiT-XL-2-512x512.pt": dict(preset_config("DiT-XL/2"), input_size=64, in_channels=4, num_classes=1000),
}
_ALIASES = {
    alias.lower(): filename
    for size, filename in ((256, "DiT-XL-2-256x256.pt"), (512, "DiT-XL-2-512x512.pt"))
    for alias in (f"DiT-XL/2-{size}", f"DiT-XL-2-{size}", f"DiT-XL/2@{size}", f"DiT-XL-2-{size}x{size}",
                  f"DiT-XL/2-{size}x{size}", filename)
}


def official_filename(name: str) -> str | None:
    """'DiT-XL/2-256' (and similar spellings) → 'DiT-XL-2-256x256.pt'; None for anything else."""
    name = name.strip()
    if name in OFFICIAL_CHECKPOINTS:
        return name
    return _ALIASES.get(name.lower())


def default_cache_dir() -> Path:
    """ditkit's download / statistics cache: ``$DITKIT_CACHE`` or ``~/.cache/ditkit``."""
    return Path(os.environ.get("DITKIT_CACHE") or Path.home() / ".cache" / "ditkit").expanduser()


def download_file(url: str, dest, *, verify: Callable[[Path], None] | None = None, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically: ``dest`` appears only complete and verified.

    ``verify(tmp_path)`` may raise (a DitkitError) to reject the file; nothing is left behind then.
    """
    dest = Path(dest).expanduser()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DitkitError(f"Could not create the cache folder {dest.parent} ({first_line(exc)}).") from None
    with atomic_path(dest, suffix=".part") as tmp:
        with open(tmp, "wb") as out:
            _fetch(url, out, progress)
        if verify is not None:
            verify(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # temporary files are private; the cache is not
    return dest


def _fetch(url: str, out, progress: bool) -> None:
    from tqdm.auto import tqdm

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or first_line(exc)
        raise DitkitError(
            f"Could not download {url} ({reason}); the server can't be reached from here — download the file "
            "elsewhere and pass its path instead."
        ) from None
    if received == 0 or (total is not None and received != total):
        raise DitkitError(f"The download of {url} was incomplete ({received} of {total or '?'} bytes).")


def download_official(name: str, cache_dir=None, *, base_url: str = OFFICIAL_URL, progress: bool = True) -> Path:
    """Path of a published DiT checkpoint in the cache, downloading and verifying it the first time."""
    filename = official_filename(name)
    if filename is None:
        raise DitkitError(f"Unknown official checkpoint {name!r}; expected one of {', '.join(OFFICIAL_CHECKPOINTS)}.")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = cache / filename
    if target.is_file():
        return target
    url = base_url.rstrip("/") + "/" + filename
    return download_file(url, target, verify=lambda tmp: _verify_official(tmp, filename), progress=progress)


def _verify_official(path: Path, filename: str) -> None:
    state_dict = safe_torch_load(path)
    if not is_state_dict(state_dict):
        raise DitkitError(f"The downloaded {filename} is not a state dict of tensors.")
    check_fits(DiTConfig.from_dict(dict(DiTConfig().to_dict(), **OFFICIAL_CHECKPOINTS[filename])), state_dict, filename)
