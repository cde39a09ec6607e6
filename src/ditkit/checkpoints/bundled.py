"""The models shipped inside the package; their folder names work wherever a checkpoint path does."""

from __future__ import annotations

from pathlib import Path

from .format import CONFIG_NAME

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"


def bundled_models(root: Path | None = None) -> dict[str, Path]:
    """The models shipped in the package, by name (e.g. ``"mnist-dit"``): folders with a config."""
    root = Path(root) if root is not None else BUNDLED_MODELS_DIR
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG_NAME).is_file()}


def locate(spec) -> Path:
    """``spec`` as a path when something exists there, else the bundled model of that name, else the path
    (for the caller's own "not found" message)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    return bundled_models().get(str(spec), path)


def shown(path) -> str:
    """``path`` as messages show it: a bundled model by its name (not the package's internal folder)."""
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return str(path)
    for name, folder in bundled_models().items():
        if resolved == folder or folder in resolved.parents:
            return name if resolved == folder else f"{name}/{resolved.relative_to(folder)}"
    return str(path)
