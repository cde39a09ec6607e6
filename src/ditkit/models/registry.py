"""The model registry: every block design by name → the class that builds it ("module:Class" in this package), and
the paper's model sizes. Torch-free and import-free, so the CLI's flags and anything listing blocks or presets read
it without building a model; ``dit.model_class`` / ``create_model`` import the class when one is built.

A new text design is its module plus one line in ``TEXT_BLOCKS``; a new label block is its class in ``dit.py``
(``dit.BLOCK_CLASSES``) plus its name in ``BLOCKS``.
"""

from __future__ import annotations

# The paper's four conditioning blocks (label models), all built by ``DiT`` itself.
BLOCKS = ("adaln-zero", "adaln", "cross-attention", "in-context")
# Text models: block name -> "module:Class" (they subclass DiT).
TEXT_BLOCKS = {"cross-text": "text_dit:TextDiT", "joint-text": "joint_text_dit:JointTextDiT"}
# Every block -> the class that builds a model of it.
MODEL_CLASSES = {**{block: "dit:DiT" for block in BLOCKS}, **TEXT_BLOCKS}
ALL_BLOCKS = tuple(MODEL_CLASSES)

# Architecture options' choices (DiTConfig.mlp, DiTConfig.norm).
MLPS = ("gelu", "swiglu")
NORMS = ("layernorm", "rmsnorm")

# Sizes from the paper (Table 1); the patch size comes from the name's suffix.
MODEL_SIZES = {
    "S": dict(depth=12, hidden_size=384, num_heads=6),
    "B": dict(depth=12, hidden_size=768, num_heads=12),
    "L": dict(depth=24, hidden_size=1024, num_heads=16),
    "XL": dict(depth=28, hidden_size=1152, num_heads=16),
}
MODEL_PRESETS = {f"DiT-{s}/{p}": dict(MODEL_SIZES[s], patch_size=p) for s in MODEL_SIZES for p in (2, 4, 8)}
