"""ditkit — Diffusion Transformers (DiT): train, sample, evaluate, count Gflops.

    import ditkit
    model = ditkit.create_model("DiT-S/2", input_size=32, num_classes=10)
    model = ditkit.load_model("DiT-XL-2-256x256.pt")      # official weights, or our own folder
    pipe = ditkit.load("mnist-dit")                        # any checkpoint as its pipeline: DiTPipeline or UniDiffuser
    out = pipe.generate(labels=[3, 5])                     # images with the checkpoint's recorded sampling
    diffusion = ditkit.create_diffusion("250")
"""

from .diffusion import create_diffusion
from .errors import DitkitError
from .models import DiT, DiTConfig, create_model
from .version import __version__

# Heavier entry points load on first use, so `import ditkit` stays light: name -> (package, its name there).
_LAZY = {
    "load_model": ("checkpoints", "load_model"),
    "save_pretrained": ("checkpoints", "save_pretrained"),
    "from_pretrained": ("checkpoints", "from_pretrained"),
    "generate": ("pipelines", "generate"),
    "load": ("pipelines", "load_pipeline"),  # ditkit.load(path_or_name, device=...) -> DiTPipeline | UniDiffuser
    "DiTPipeline": ("pipelines", "DiTPipeline"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        package, attribute = _LAZY[name]
        return getattr(importlib.import_module(f".{package}", __name__), attribute)
    raise AttributeError(f"module 'ditkit' has no attribute {name!r}")


__all__ = ["DiT", "DiTConfig", "DitkitError", "create_diffusion", "create_model", "__version__", *_LAZY]
