"""Saving and loading weights, one concept per module.

- ``format``: our format: a folder of ``config.json`` + ``model.safetensors``, written atomically; the format
  markers (``FORMAT``, ``UNI_FORMAT``, ``DECODER_FORMAT``)
- ``official``: safe reading of the official ``.pt`` pickles (``weights_only`` + an explicit allow-list)
- ``inference``: the DiTConfig read off a state dict's key shapes; strict building of the model
- ``download``: ``download_file``, the project's one downloader; the published DiT-XL/2 files and the download
  cache
- ``bundled``: the models shipped inside the package, by name (``locate`` resolves a name where no path exists)
- ``loading``: ``load_checkpoint`` / ``load_model``: any of the above, or a diffusers folder (``interop``) → a
  DiT; ``read_config`` (a folder's config, checked)
- ``unidiffuser``: UniDiffuser files: our ``ditkit-unidiffuser`` folder (by path or bundled name); safe reading of
  the official ``uvit_v1.pth`` (config from shapes) and ``caption_decoder.pth`` (prefix width checked)

The file readers (``read_json``, ``read_safetensors``) are ``ditkit.fileio``'s, importable from ``format`` too.
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
