"""Saving and loading DiT weights, one concept per module.

| module | holds |
|---|---|
| ``format``    | our format: a folder of ``config.json`` + ``model.safetensors`` (write atomically, read strictly) |
| ``official``  | safe reading of the official ``.pt`` pickles (``weights_only`` + an explicit allow-list) |
| ``inference`` | the DiTConfig read off a state dict's key shapes; strict building of the model |
| ``download``  | the published DiT-XL/2 files, the download cache, and the project's one downloader |
| ``bundled``   | the models shipped inside the package, by name |
| ``loading``   | ``load_checkpoint`` / ``load_model``: any of the above (and a diffusers folder) → a DiT |
"""

from .bundled import BUNDLED_MODELS_DIR, bundled_models
from .download import (
    OFFICIAL_CHECKPOINTS, OFFICIAL_URL, default_cache_dir, download_file, download_official, official_filename,
)
from .format import CONFIG_NAME, FORMAT, WEIGHTS_NAME, make_checkpoint_config, save_pretrained
from .inference import infer_config
from .loading import LoadedCheckpoint, from_pretrained, load_checkpoint, load_model

__all__ = [
    "CONFIG_NAME", "WEIGHTS_NAME", "FORMAT", "LoadedCheckpoint", "save_pretrained", "from_pretrained", "load_model",
    "load_checkpoint", "infer_config", "make_checkpoint_config", "download_official", "download_file",
    "default_cache_dir", "official_filename", "OFFICIAL_CHECKPOINTS", "OFFICIAL_URL", "BUNDLED_MODELS_DIR",
    "bundled_models",
]
