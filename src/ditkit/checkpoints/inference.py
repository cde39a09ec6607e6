"""The DiTConfig of a state dict in the official key layout, read off its tensor shapes, and strict building.

num_heads and class_dropout_prob leave no trace in the weights: they come from train.py's args, the
paper's model sizes, or explicit overrides (and a guess is said out loud in ``notes``).
"""

from __future__ import annotations

import math

import torch

from ..errors import DitkitError
from ..models.dit import BLOCKS, MODEL_SIZES, DiT, DiTConfig, create_model, preset_config, resolve_config
from .official import train_args as _train_args

def describe(config: DiTConfig) -> str:
    return (f"DiT (hidden {config.hidden_size}, depth {config.depth}, patch {config.patch_size}, "
            f"input {config.in_channels}x{config.input_size}x{config.input_size}, "
            f"{config.num_classes} classes, block {config.block})")


def _guess_heads(hidden: int, depth: int, args: dict, notes: list[str]) -> int:
    """num_heads is invisible in the weights: train args, then the paper's sizes, then head dim 64."""
    name = args.get("model")
    if isinstance(name, str):
        try:
            preset = preset_config(name)
        except DitkitError:
            preset = None
        if preset and (preset["hidden_size"], preset["depth"]) == (hidden, depth):
            return preset["num_heads"]
        notes.append(f"the train args name {name}, which does not match the weights' shapes; ignored it")
    for size in MODEL_SIZES.values():
        if (size["hidden_size"], size["depth"]) == (hidden, depth):
            return size["num_heads"]
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    notes.append(
        f"num_heads is not stored in the weights and this is no paper size: guessed {heads} "
        f"(head width 64); pass num_heads (--num-heads) if the model used another"
    )
    return heads


def infer_config(state_dict: dict, *, train_args=None, notes: list[str] | None = None, **overrides) -> DiTConfig:
    """The DiTConfig of an official-layout state dict, read off its tensor shapes.

    ``train_args`` (the ``args`` of a train.py checkpoint) supply num_heads when they agree with the
    shapes; explicit ``overrides`` win over everything inferred.
    """
    notes = [] if notes is None else notes
    args = _train_args(train_args)
    overrides = {k: v for k, v in overrides.items() if v is not None}

    def shape(key: str, ndim: int):
        tensor = state_dict.get(key)
        if tensor is None or tensor.ndim != ndim:
            raise DitkitError(f"These weights are not a DiT state dict: {key!r} is missing or malformed.")
        return tuple(tensor.shape)

    hidden, in_channels, patch, _ = shape("x_embedder.proj.weight", 4)
    tokens = shape("pos_embed", 3)[1]
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise DitkitError(f"The pos_embed of these weights has {tokens} positions, not a square grid.")
    block_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    if not block_ids:
        raise DitkitError("These weights are not a DiT state dict: they have no transformer blocks.")
    depth = max(block_ids) + 1
    mlp_ratio = shape("blocks.0.mlp.fc1.weight", 2)[0] / hidden
    out_channels, leftover = divmod(shape("final_layer.linear.weight", 2)[0], patch * patch)
    if leftover or out_channels not in (in_channels, 2 * in_channels):
        raise DitkitError(
            f"The final layer predicts {out_channels} channels per pixel, which fits neither {in_channels} "
            f"nor {2 * in_channels} (learned sigma) for {in_channels} input channels."
        )
    dropout = overrides.get("class_dropout_prob", 0.1)  # the official value; not visible in the shapes
    table = state_dict.get("y_embedder.embedding_table.weight")
    # the label table has a null-class row exactly when labels can be dropped (classifier-free guidance)
    num_classes = 0 if table is None else table.shape[0] - (1 if dropout > 0 else 0)
    if "num_heads" in overrides:
        heads = overrides["num_heads"]
    else:
        heads = _guess_heads(hidden, depth, args, notes)
    inferred = dict(
        input_size=grid * patch, patch_size=patch, in_channels=in_channels, hidden_size=hidden, depth=depth,
        num_heads=heads, mlp_ratio=mlp_ratio, num_classes=num_classes, class_dropout_prob=dropout,
        learn_sigma=out_channels == 2 * in_channels, block="adaln-zero",
    )
    if "block" not in overrides:
        inferred["block"] = _infer_block(state_dict, inferred)
    return resolve_config(inferred, **overrides)


def _expected_shapes(config: DiTConfig) -> dict[str, tuple]:
    with torch.device("meta"):
        model = create_model(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _infer_block(state_dict: dict, config: dict) -> str:
    """The block design whose parameter layout the weights have exactly (official ones are adaLN-Zero)."""
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    for block in BLOCKS:
        try:
            candidate = DiTConfig.from_dict(dict(config, block=block))
        except DitkitError:
            return "adaln-zero"  # an invalid config; the build reports it
        if _expected_shapes(candidate) == got:
            return block
    return "adaln-zero"  # none fits exactly: the strict load names the differences


# --------------------------------------------------------------------------------------------
# Building the model and loading weights strictly
# --------------------------------------------------------------------------------------------


def _few(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def check_fits(config: DiTConfig, state_dict: dict, source) -> None:
    expected = _expected_shapes(config)
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = [
        f"{k} is {list(got[k])} in the checkpoint but {list(expected[k])} in the model"
        for k in expected if k in got and got[k] != expected[k]
    ]
    problems = []
    if mismatched:
        problems.append("shapes differ (" + _few(mismatched) + ")")
    if missing:
        problems.append(f"{len(missing)} keys are missing ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} keys are unexpected ({_few(unexpected)})")
    if problems:
        raise DitkitError(f"The weights in {source} do not fit a {describe(config)}: " + "; ".join(problems) + ".")


def build_model(config: DiTConfig, state_dict: dict, source, map_location) -> DiT:
    check_fits(config, state_dict, source)
    # Build without initialising (meta device), then adopt the loaded tensors: loading XL/2 skips 675M
    # random initialisations. Weights are used in float32 whatever precision they were stored in.
    with torch.device("meta"):
        model = create_model(config)
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.to(map_location).eval()
