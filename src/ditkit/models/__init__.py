"""Networks: the DiT (class- and text-conditioned), UniDiffuser's U-ViT and caption decoder, and their costs.

- ``embeddings``: 2-D sin-cos position table, ``rotary_2d_tables`` (RoPE), ``TimestepEmbedder``,
  ``LabelEmbedder``, ``PatchEmbed``
- ``dit``: ``DiTConfig`` (dataclass), ``DiT`` (``compile_blocks()``: per-block torch.compile, what ``--compile``
  uses), the four block designs, ``attention`` (SDPA; plain ops for bf16 on CPU), ``MODEL_PRESETS``,
  ``create_model`` (the class by the registry: ``model_class(block)``)
- ``registry``: torch-free: every block name → the class that builds it (``MODEL_CLASSES``: ``BLOCKS``, the
  paper's four, and ``TEXT_BLOCKS``), ``MLPS``, ``NORMS``, ``MODEL_SIZES``, ``MODEL_PRESETS``
- ``text_dit``: block ``"cross-text"`` (PixArt-α): ``CrossTextBlock`` (adaLN-Zero self-attn → masked cross-attn to
  the projected text → adaLN-Zero MLP), ``TextDiT`` (caption projection, learned null text for caption dropout /
  CFG; with ``text_pooled`` the pooled text joins emb(t)); ``model(x, t, TextEncoding)``
- ``joint_text_dit``: block ``"joint-text"`` (SD3's MM-DiT): ``JointTextBlock`` (an image and a text ``_Stream``
  attending jointly over [text; image]; the last block keeps only the text's keys and values), ``JointTextDiT``
  (only its blocks differ from ``TextDiT``). Every text block maps ``(x, c, context, mask) -> (x, context)``
- ``flops``: forward MACs per image ("Gflops" as the paper counts them), parameter counts
- ``uvit``: UniDiffuser v1's U-ViT (official key names): ``UViTConfig``, ``UViT``, ``UVIT_V1``, config from a
  state dict's shapes, strict loading (``load_uvit_state_dict``), ``uvit_flops``
- ``caption_decoder``: text latent → words: ``PrefixDecoder`` (``encode_prefix`` = the learned reduction to 64-d,
  ``decode_prefix``, beam search), ``WordPrefixDecoder`` (offline), ``GPT2PrefixDecoder`` (official file)

Architecture options are ``DiTConfig`` fields recorded in every checkpoint (defaults = the paper's layers, same
keys, bit for bit; text blocks refuse them): ``mlp`` ``gelu``/``swiglu`` (``SwiGLU``, hidden 2/3·mlp_ratio·D
rounded up to ×8), ``norm`` ``layernorm``/``rmsnorm`` (``make_norm``), ``qk_norm`` (``QKNorm``: RMSNorm with a
learned scale on each head's q, k), ``rope`` (2-D RoPE: half of each head's channel pairs turn with the row, half
with the column; replaces ``pos_embed``, which is then not stored), ``long_skips`` (U-ViT: block i's output joins
block depth-1-i's input as x + ``skip_projections[i]``([x; skip]), a zero-initialised Linear(2D, D), so the model
starts exactly as without skips; an odd depth's middle block has none). Blocks take ``LayerOptions`` (mlp, norm,
qk_norm); RoPE tables reach them at forward time.
"""

from .dit import DiT, DiTConfig, create_model, model_class, preset_config, resolve_config
from .registry import ALL_BLOCKS, BLOCKS, MODEL_PRESETS, TEXT_BLOCKS

__all__ = ["ALL_BLOCKS", "BLOCKS", "DiT", "DiTConfig", "MODEL_PRESETS", "TEXT_BLOCKS", "create_model", "model_class",
           "preset_config", "resolve_config"]
