"""Model families: DiT (and its embeddings)."""

from .dit import BLOCKS, DiT, DiTConfig, MODEL_PRESETS, create_model, preset_config, resolve_config

__all__ = ["BLOCKS", "DiT", "DiTConfig", "MODEL_PRESETS", "create_model", "preset_config", "resolve_config"]
