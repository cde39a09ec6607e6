"""diffusers interop: ditkit DiT ↔ a folder that ``DiTPipeline.from_pretrained`` loads.

The folder: ``transformer/`` (``DiTTransformer2DModel``: config.json + diffusion_pytorch_model.safetensors,
plus ``ditkit_config.json``, our full config, so a round trip loses nothing), ``scheduler/`` (a DDIM
scheduler with the training betas), ``vae/`` (the AutoencoderKL the checkpoint names) and
``model_index.json``. Pixel-space models have no VAE, which ``DiTPipeline`` requires: for them only
``transformer/`` and ``scheduler/`` are written, and the folder is loadable with
``DiTTransformer2DModel.from_pretrained(out, subfolder="transformer")`` (and by ditkit), not as a pipeline.

Layout differences handled here:
- diffusers gives every block its own copy of the timestep and label embedders (ditkit shares one);
- q, k, v are separate linears (ditkit: one ``qkv``);
- ``DiTPipeline`` hard-codes class 1000 as the null (unconditional) class, so the label table is padded to
  1,001 rows with the null row at 1000; models with more than 1,000 classes cannot be expressed;
- only the adaLN-Zero block with mlp_ratio 4 and the paper's layers (no architecture options) exists in
  diffusers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..diffusion.schedules import named_betas
from ..errors import DitkitError
from ..fileio import atomic_dir, read_json, read_safetensors
from ..models.dit import DiTConfig
from ..models.embeddings import sincos_2d_position_embedding

TRANSFORMER_CLASSES = ("DiTTransformer2DModel", "Transformer2DModel")
WEIGHTS = "diffusion_pytorch_model.safetensors"
DITKIT_CONFIG = "ditkit_config.json"
PIPELINE_NULL_CLASS = 1000  # DiTPipeline.__call__ uses this label for the unconditional half of guidance
DIFFUSERS_VERSION = "0.42.1"  # the layout written here; the version it was verified against


# --------------------------------------------------------------------------------------------
# Key layout
# --------------------------------------------------------------------------------------------

_BLOCK_RENAMES = {  # ditkit block key -> diffusers transformer_blocks.{i} key
    "attn.proj": "attn1.to_out.0",
    "mlp.fc1": "ff.net.0.proj",
    "mlp.fc2": "ff.net.2",
    "adaLN_modulation.1": "norm1.linear",
}
_EMBEDDER_RENAMES = {  # ditkit key -> diffusers key inside each block's norm1.emb
    "t_embedder.mlp.0": "timestep_embedder.linear_1",
    "t_embedder.mlp.2": "timestep_embedder.linear_2",
}
_TOP_RENAMES = {
    "x_embedder.proj": "pos_embed.proj",
    "final_layer.adaLN_modulation.1": "proj_out_1",
    "final_layer.linear": "proj_out_2",
}


def check_expressible(config: DiTConfig) -> None:
    """Refuse, in one sentence, what diffusers' DiTTransformer2DModel has no way to express."""
    if config.block != "adaln-zero":
        raise DitkitError(
            f"diffusers' DiTTransformer2DModel has only the adaLN-Zero block, so a DiT with the {config.block!r} "
            "block cannot be exported to diffusers."
        )
    if config.mlp_ratio != 4.0:
        raise DitkitError(f"diffusers' DiT has MLPs 4x the width; this model's mlp_ratio is {config.mlp_ratio}.")
    if config.changed_options():
        raise DitkitError(
            f"diffusers' DiTTransformer2DModel has no layers for ditkit's architecture options "
            f"({', '.join(config.changed_options())}), so this model cannot be exported to diffusers."
        )
    if config.num_classes > PIPELINE_NULL_CLASS:
        raise DitkitError(
            f"diffusers' DiTPipeline uses class {PIPELINE_NULL_CLASS} as its null class, so a model with "
            f"{config.num_classes} classes cannot be exported."
        )


def _label_table(state_dict: dict, config: DiTConfig) -> torch.Tensor:
    """ditkit's label table padded to diffusers' 1,001 rows: classes, then the null row up to row 1000.

    Padding rows (labels no model was trained with) are the null row too, so they mean "unconditional".
    A model trained without label dropout has no null row: zeros stand in (guidance makes no sense then),
    and an unconditional model gets all zeros, so every label adds nothing — exactly unconditional.
    """
    hidden = config.hidden_size
    table = state_dict.get("y_embedder.embedding_table.weight")
    classes = table[: config.num_classes] if table is not None else torch.zeros(0, hidden)
    has_null = table is not None and table.shape[0] > config.num_classes
    null = table[config.num_classes] if has_null else torch.zeros(hidden, dtype=classes.dtype)
    padding = null.expand(PIPELINE_NULL_CLASS + 1 - config.num_classes, hidden)
    return torch.cat([classes, padding]).contiguous()


def _renamed(config: DiTConfig) -> list[tuple[str, str]]:
    """(ditkit key, diffusers key) of every tensor that only changes its name."""
    pairs = list(_TOP_RENAMES.items())
    for i in range(config.depth):
        pairs += [(f"blocks.{i}.{old}", f"transformer_blocks.{i}.{new}") for old, new in _BLOCK_RENAMES.items()]
    return [(f"{old}.{p}", f"{new}.{p}") for old, new in pairs for p in ("weight", "bias")]


def _embedder_keys() -> list[tuple[str, str]]:
    """(ditkit key, key inside a diffusers block's ``norm1.emb``) of the timestep MLP."""
    return [(f"{old}.{p}", f"{new}.{p}") for old, new in _EMBEDDER_RENAMES.items() for p in ("weight", "bias")]


def to_diffusers_state_dict(state_dict: dict, config: DiTConfig) -> dict[str, torch.Tensor]:
    """ditkit (official DiT) keys → DiTTransformer2DModel keys."""
    check_expressible(config)
    out = {new: state_dict[old] for old, new in _renamed(config)}
    embedder = {new: state_dict[old] for old, new in _embedder_keys()}
    embedder["class_embedder.embedding_table.weight"] = _label_table(state_dict, config)
    for i in range(config.depth):
        block = f"transformer_blocks.{i}."
        for p in ("weight", "bias"):  # one fused qkv linear → three
            for name, part in zip(("to_q", "to_k", "to_v"), state_dict[f"blocks.{i}.attn.qkv.{p}"].chunk(3, dim=0)):
                out[f"{block}attn1.{name}.{p}"] = part
        for key, value in embedder.items():  # every diffusers block carries its own copy
            out[f"{block}norm1.emb.{key}"] = value
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def from_diffusers_state_dict(weights: dict, config: DiTConfig) -> dict[str, torch.Tensor]:
    """DiTTransformer2DModel keys → ditkit keys (the inverse of ``to_diffusers_state_dict``)."""
    first = "transformer_blocks.0.norm1.emb."
    for i in range(config.depth):  # ditkit shares one embedder: the per-block copies must agree
        for key in [k[len(first):] for k in weights if k.startswith(first)]:
            if not torch.equal(weights[f"transformer_blocks.{i}.norm1.emb.{key}"], weights[first + key]):
                raise DitkitError(
                    f"Block {i} of this diffusers DiT has its own timestep/label embedder; ditkit's DiT (like the "
                    "paper's) shares one, so these weights cannot be converted."
                )
    out = {old: weights[new] for old, new in _renamed(config)}
    out.update({old: weights[first + new] for old, new in _embedder_keys()})
    table = weights[first + "class_embedder.embedding_table.weight"]
    if config.num_classes:
        rows = [table[: config.num_classes]]
        if config.class_dropout_prob > 0:
            rows.append(table[PIPELINE_NULL_CLASS if table.shape[0] > PIPELINE_NULL_CLASS else -1][None])
        out["y_embedder.embedding_table.weight"] = torch.cat(rows)
    for i in range(config.depth):
        block = f"transformer_blocks.{i}."
        for p in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([weights[f"{block}attn1.to_{n}.{p}"] for n in "qkv"])
    grid = config.input_size // config.patch_size  # diffusers recomputes the fixed sin-cos table; so do we
    out["pos_embed"] = sincos_2d_position_embedding(config.hidden_size, grid)[None]
    return out


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def transformer_config(config: DiTConfig) -> dict:
    """DiTTransformer2DModel's config.json for ``config``."""
    check_expressible(config)
    return {
        "_class_name": "DiTTransformer2DModel",
        "_diffusers_version": DIFFUSERS_VERSION,
        "num_attention_heads": config.num_heads,
        "attention_head_dim": config.hidden_size // config.num_heads,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "num_layers": config.depth,
        "dropout": 0.0,
        "norm_num_groups": 32,
        "attention_bias": True,
        "sample_size": config.input_size,
        "patch_size": config.patch_size,
        "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": PIPELINE_NULL_CLASS,
        "upcast_attention": False,
        "norm_type": "ada_norm_zero",
        "norm_elementwise_affine": False,
        "norm_eps": 1e-6,  # DiT's LayerNorms use 1e-6 (diffusers' default 1e-5 would change the outputs)
    }


def model_config_from_transformer(tc: dict, ditkit_model: dict | None) -> dict:
    """ditkit's model config from a transformer config.json (``ditkit_model``, when present, wins)."""
    if ditkit_model is not None:
        return dict(ditkit_model)
    if tc.get("norm_type", "ada_norm_zero") != "ada_norm_zero" or not tc.get("patch_size"):
        raise DitkitError("This diffusers transformer is not a DiT with adaLN-Zero blocks, so ditkit cannot load it.")
    try:
        heads, in_channels = int(tc["num_attention_heads"]), int(tc["in_channels"])
        out_channels = int(tc.get("out_channels") or in_channels)
        return dict(
            input_size=int(tc["sample_size"]), patch_size=int(tc["patch_size"]), in_channels=in_channels,
            hidden_size=heads * int(tc["attention_head_dim"]), depth=int(tc["num_layers"]), num_heads=heads,
            mlp_ratio=4.0, num_classes=int(tc["num_embeds_ada_norm"]), class_dropout_prob=0.1,
            learn_sigma=out_channels == 2 * in_channels, block="adaln-zero",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DitkitError(f"The diffusers transformer config lacks or garbles {exc}.") from None


def scheduler_config(diffusion: dict) -> dict:
    """A DDIMScheduler config with exactly the training betas (DiT's own DDIM: leading spacing, ᾱ_prev=1)."""
    steps = int(diffusion.get("diffusion_steps", 1000))
    schedule = diffusion.get("noise_schedule", "linear")
    betas = named_betas(schedule, steps)
    return {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": DIFFUSERS_VERSION,
        "num_train_timesteps": steps,
        "beta_schedule": "squaredcos_cap_v2" if schedule == "cosine" else "linear",
        "beta_start": float(betas[0]),
        "beta_end": float(betas[-1]),
        "trained_betas": [float(b) for b in betas],
        "clip_sample": False,
        "set_alpha_to_one": True,
        "steps_offset": 0,
        "prediction_type": "epsilon",
        "timestep_spacing": "leading",
    }


def diffusion_from_scheduler(sc: dict | None, learn_sigma: bool) -> dict:
    """ditkit's diffusion config from a scheduler config: the named schedule its betas are."""
    if sc is None:
        return {"diffusion_steps": 1000, "noise_schedule": "linear", "learn_sigma": learn_sigma}
    steps = int(sc.get("num_train_timesteps", 1000))
    if sc.get("trained_betas"):
        betas = np.asarray(sc["trained_betas"], dtype=np.float64)
    elif sc.get("beta_schedule") == "squaredcos_cap_v2":
        betas = named_betas("cosine", steps)
    else:
        betas = np.linspace(sc.get("beta_start", 1e-4), sc.get("beta_end", 0.02), steps)
    for name in ("linear", "cosine"):
        if len(betas) == steps and np.allclose(betas, named_betas(name, steps), rtol=1e-5, atol=1e-8):
            return {"diffusion_steps": steps, "noise_schedule": name, "learn_sigma": learn_sigma}
    raise DitkitError(
        f"The diffusers scheduler's betas ({sc.get('beta_schedule')!r}, {steps} steps) are neither DiT's linear "
        "nor the cosine schedule, so ditkit cannot express this process."
    )


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def _transformer_dir(path: Path) -> Path | None:
    """The DiTTransformer2DModel folder of ``path`` (a pipeline folder or the transformer folder itself)."""
    for folder in (path, path / "transformer"):
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("_class_name") in TRANSFORMER_CLASSES:
            return folder
    return None


def is_diffusers_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "model_index.json").is_file() or _transformer_dir(path) is not None)


def _codec_of(root: Path, meta: dict | None, in_channels: int) -> dict | None:
    """The codec: the folder's own vae/ when there is one (works offline), else what ditkit recorded."""
    vae = root / "vae" / "config.json"
    codec = (meta or {}).get("codec")
    if vae.is_file():
        try:
            factor = json.loads(vae.read_text()).get("scaling_factor")
        except (OSError, ValueError):
            factor = None
        scaling = (codec or {}).get("scaling_factor") or factor or 0.18215
        return {"type": "vae", "source": str(vae.parent.resolve()), "scaling_factor": scaling}
    return codec


def read_folder(path) -> tuple[dict, dict, Path]:
    """(ditkit config dict, ditkit state dict, weights file) of a diffusers DiT folder; the config lacks only
    our format marker, which ``checkpoints.loading`` (the one reader of every checkpoint kind) adds."""
    path = Path(path)
    tdir = _transformer_dir(path)
    if tdir is None:
        raise DitkitError(f"{path} is a diffusers folder without a DiT transformer (transformer/config.json).")
    root = tdir.parent if tdir != path else path
    meta = read_json(tdir / DITKIT_CONFIG) if (tdir / DITKIT_CONFIG).is_file() else None
    transformer = read_json(tdir / "config.json")
    model = model_config_from_transformer(transformer, (meta or {}).get("model"))
    config = DiTConfig.from_dict(model)
    weights = tdir / WEIGHTS
    if not weights.is_file():
        raise DitkitError(f"{tdir} has no {WEIGHTS} (ditkit reads diffusers weights only as safetensors).")
    try:
        state_dict = from_diffusers_state_dict(read_safetensors(weights), config)
    except KeyError as exc:
        raise DitkitError(f"{weights} is not a diffusers DiT of this config: it lacks {exc}.") from None
    sched = root / "scheduler" / "scheduler_config.json"
    diffusion = (meta or {}).get("diffusion") or diffusion_from_scheduler(
        read_json(sched) if sched.is_file() else None, config.learn_sigma)
    index = read_json(root / "model_index.json") if (root / "model_index.json").is_file() else {}
    labels = index.get("id2label") or {}
    class_names = (meta or {}).get("class_names") or (
        [str(labels.get(str(i), i)) for i in range(config.num_classes)] if labels else None)
    data = {
        "ditkit_version": (meta or {}).get("ditkit_version"), "model": config.to_dict(),
        "diffusion": diffusion, "codec": _codec_of(root, meta, config.in_channels), "class_names": class_names,
        "extra": dict((meta or {}).get("extra") or {}, source_format="diffusers"),
    }
    return data, state_dict, weights


def _write_vae(codec_spec, folder: Path) -> dict:
    """Save the AutoencoderKL ``codec_spec`` names into ``folder``; its codec config (scaling factor set)."""
    from ..codecs import VAECodec, codec_from_config, make_codec

    codec = codec_from_config(codec_spec) if isinstance(codec_spec, dict) else make_codec(codec_spec)
    if not isinstance(codec, VAECodec):
        raise DitkitError(f"{codec_spec!r} is not a VAE, so it cannot be the pipeline's vae.")
    codec.vae.register_to_config(scaling_factor=codec.scaling_factor)  # DiTPipeline decodes with this factor
    codec.vae.save_pretrained(folder, safe_serialization=True)
    return codec.to_config()


def export_diffusers(model, config: dict, out, *, vae=None) -> dict:
    """Write ``model`` (with its ditkit ``config`` dict) as a diffusers DiT folder at ``out``, atomically.

    ``vae`` (a spec like ``ema`` or a local AutoencoderKL folder) overrides the VAE the config names.
    Returns a summary: what was written and whether ``DiTPipeline.from_pretrained`` can load it.
    """
    from safetensors.torch import save_file

    out = Path(out).expanduser()
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise DitkitError(f"{out} already exists and is not an empty folder; choose a new output folder.")
    dit = model.config
    check_expressible(dit)
    if (config.get("diffusion") or {}).get("process", "ddpm") != "ddpm":
        raise DitkitError("diffusers' DiTPipeline samples a DDPM (ε-prediction) model; this one was trained with "
                          "flow matching, so it cannot be exported as a DiTPipeline.")
    codec = vae if vae is not None else config.get("codec")
    has_vae = vae is not None or (isinstance(codec, dict) and codec.get("type") == "vae")
    with atomic_dir(out) as tmp:
        (tmp / "transformer").mkdir()
        (tmp / "scheduler").mkdir()
        save_file(to_diffusers_state_dict(model.state_dict(), dit), str(tmp / "transformer" / WEIGHTS),
                  metadata={"format": "pt"})
        (tmp / "transformer" / "config.json").write_text(json.dumps(transformer_config(dit), indent=2) + "\n")
        diffusion = dict(config.get("diffusion") or {}, learn_sigma=dit.learn_sigma)
        (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler_config(diffusion), indent=2))
        if has_vae:
            codec = _write_vae(codec, tmp / "vae")
            index = {"_class_name": "DiTPipeline", "_diffusers_version": DIFFUSERS_VERSION,
                     "transformer": ["diffusers", "DiTTransformer2DModel"], "scheduler": ["diffusers", "DDIMScheduler"],
                     "vae": ["diffusers", "AutoencoderKL"]}
            if config.get("class_names"):
                index["id2label"] = {str(i): name for i, name in enumerate(config["class_names"])}
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        meta = dict(config, model=dit.to_dict(), diffusion=diffusion, codec=codec)
        (tmp / "transformer" / DITKIT_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    why = ("a pixel-space model has no VAE" if isinstance(codec, dict) and codec.get("type") == "pixel" else
           "the checkpoint names no VAE (pass vae= / --vae to ship one)")
    return {"out": str(out), "pipeline": has_vae,
            "note": None if has_vae else f"{why}, and DiTPipeline requires one: wrote transformer/ and scheduler/ "
            "only (load with DiTTransformer2DModel.from_pretrained(out, subfolder='transformer'))"}


def use_dit_timestep_frequencies(module) -> int:
    """Make a loaded diffusers DiT (a ``DiTTransformer2DModel`` or a ``DiTPipeline``) embed timesteps as DiT does.

    diffusers' DiT builds its sinusoidal timestep features with frequencies 10000^(-i/127)
    (``downscale_freq_shift=1``, hard-coded), the paper's code with 10000^(-i/128). The weights are the same,
    but outputs then differ slightly (for every DiT, the published ones too). This sets the shift to 0 in
    each block's embedder, after which the diffusers forward equals ditkit's; returns how many were set.
    """
    transformer = getattr(module, "transformer", module)
    count = 0
    for block in transformer.transformer_blocks:
        block.norm1.emb.time_proj.downscale_freq_shift = 0
        count += 1
    return count
