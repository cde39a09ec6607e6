"""ditkit — Diffusion Transformers (DiT): train, sample, evaluate, count Gflops.

    import ditkit
    model = ditkit.create_model("DiT-S/2", input_size=32, num_classes=10)
    model = ditkit.load_model("DiT-XL-2-256x256.pt")      # official weights, or our own folder
    diffusion = ditkit.create_diffusion("250")
"""

from .diffusion import create_diffusion
from .errors import DitkitError
from .models import DiT, DiTConfig, create_model
from .version import __version__

# Heavier entry points load on first use, so `import ditkit` stays light.
_LAZY = {
    "load_model": "checkpoints",
    "save_pretrained": "checkpoints",
    "from_pretrained": "checkpoints",
    "generate": "pipelines",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ditkit' has no attribute {name!r}")


__all__ = ["DiT", "DiTConfig", "DitkitError", "create_diffusion", "create_model", "__version__", *_LAZY]
