"""The import contract: ditkit's packages in layer order, and the few imports allowed against it.

A module may import from its own package or module and from any lower layer, never from its own layer or a
higher one: packages in one layer are independent of each other. Within a package, modules import each
other freely but without a cycle. ``tests/test_architecture.py`` walks every import in ``src/ditkit`` with
``ast`` (lazy ones inside functions included) and holds the code to this; ``ARCHITECTURE.md`` shows the map.
Torch-free and import-free, so anything may read it.
"""

from __future__ import annotations

# Lowest first. A name is a package (``ditkit/models/``) or a module at the top (``ditkit/errors.py``); ``ditkit``
# is the package's own ``__init__`` (the public facade, which may import anything below it).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "layers", "knobs"),  # the base: no ditkit imports
    ("fileio", "imaging", "progress", "precision", "distributed"),  # base helpers (they use only errors)
    ("data", "codecs"),  # datasets; images ↔ latents and text → text states
    ("models",),  # networks (text models take codecs' TextEncoding)
    ("diffusion",),  # processes, samplers and their registry, guidance: functions of a denoiser
    ("interop",),  # other libraries' checkpoint layouts (diffusers), to and from our config + weights
    ("checkpoints",),  # our folder, the official files, loading any of them (a diffusers folder via interop)
    ("pipelines",),  # model + process + sampler + guidance + codec → images
    ("evaluation",),  # metrics and scorers; samples through pipelines (text-to-image, the FID hook)
    ("training",),  # the engine; its periodic evaluation calls evaluation
    ("study", "app"),  # the paper's study (runs training); the web app (samples through pipelines)
    ("cli",),  # one module per subcommand, thin over the library
    ("ditkit", "__main__", "demo"),  # the facade, `python -m ditkit`, `./run demo`
)

# Imports allowed against the contract, each ``(importing module, imported module): reason``. Keep it short: an
# entry here is a place where the code is not yet where it belongs, or a deliberate start-up-time lazy import.
ALLOWED_IMPORTS: dict[tuple[str, str], str] = {
}


def layer_of(unit: str) -> int | None:
    """The index of the layer that holds ``unit`` (a package or top module name), or None if none does."""
    for index, names in enumerate(LAYERS):
        if unit in names:
            return index
    return None
