"""Everything before the first step: the data, the model, the resumed state, the run folder.

The run families (``families.py``) build their data and models from these parts; the loop in ``trainer.py``
only steps the state and calls hooks.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..checkpoints import load_model
from ..codecs import make_codec
from ..data import LatentCacheDataset, build_latent_cache, load_dataset
from ..distributed import Dist
from ..errors import DitkitError
from ..models import resolve_config
from ..precision import resolve_precision
from .bf16_moments import AdamWBf16Moments
from .config import TrainConfig
from .data_order import ResumableShardBatches
from .ema import make_ema
from .optimizer_in_backward import OptimizerInBackward
from .state import TrainState, load_checkpoint, resolve_resume


@dataclass
class Data:
    """The training set as the loop sees it."""

    dataset: object
    codec: object                # the codec the model's inputs live in (pixels or a VAE)
    encode_on_the_fly: bool      # images come in and are encoded each step (no latent cache)
    in_channels: int
    input_size: int
    image_size: int


def configure_machine(config: TrainConfig, d: Dist) -> TrainConfig:
    """Threads, TF32 and the precision ``auto`` resolves to; returns the config with it resolved."""
    if config.threads:
        torch.set_num_threads(config.threads)
    elif d.device.type == "cpu" and d.local_world_size > 1:  # don't oversubscribe the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.local_world_size))
    if d.device.type == "cuda" and config.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    precision = resolve_precision(config.precision, d.device)  # logged once the run starts (trainer.py)
    if precision == "fp16" and d.device.type != "cuda":
        raise DitkitError("--precision fp16 needs a CUDA GPU (use bf16 on CPU)")
    if config.global_batch_size % d.world_size:
        raise DitkitError(f"the global batch size {config.global_batch_size} does not split evenly over "
                          f"{d.world_size} processes")
    return replace(config, precision=precision)


def on_main_then_share(d: Dist, fn):
    """Run ``fn`` on rank 0; if it raises DitkitError, every rank raises it (nobody hangs)."""
    message = None
    if d.is_main:
        try:
            fn()
        except DitkitError as exc:
            message = str(exc)
    message = d.broadcast_object(message)
    if message:
        raise DitkitError(message)


def check_writable(run_dir: str) -> None:
    """Fail now, not after data and model are built, if ``run_dir`` cannot be written. Folders the probe
    creates are removed again, so a run stopped later by bad input leaves no empty folder behind."""
    first_new = os.path.abspath(run_dir)  # the outermost folder this probe creates, if any (absolute: a
    while not os.path.exists(os.path.dirname(first_new)):  # relative path's top folder has dirname "")
        first_new = os.path.dirname(first_new)
    created = not os.path.exists(first_new)
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise DitkitError(f"cannot write to the output folder {run_dir}: {exc.strerror or exc}") from exc
    finally:
        if created:
            shutil.rmtree(first_new, ignore_errors=True)


def read_resume(config: TrainConfig, run_dir: str) -> dict | None:
    """The checkpoint to resume from (read before building anything, so a bad one fails fast)."""
    if not config.resume:
        return None
    return load_checkpoint(resolve_resume(config.resume, run_dir))


def open_data(config: TrainConfig, d: Dist) -> Data:
    """The training set, the codec, and the (in_channels, input_size) the model sees."""
    bundled = config.data in ("mnist", "shapes")
    image_size = config.image_size or (32 if bundled else 256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(config.data, image_size=image_size, split="train", flip=config.flip,
                            strict=config.strict, flip_seed=config.seed)
    for w in caught:
        if d.is_main:
            print(f"ditkit train: warning: {w.message}", file=sys.stderr)
    if isinstance(data, LatentCacheDataset):  # --data pointed straight at a cache folder
        codec = make_codec(data.codec_config).to(d.device)
        return Data(data, codec, False, data.channels, data.latent_size, data.image_size)
    codec = make_codec(config.vae, image_channels=data.channels).to(d.device)
    if config.latent_cache:
        if d.is_main and not os.path.isfile(os.path.join(config.latent_cache, "cache.json")):
            build_latent_cache(data, codec, config.latent_cache, seed=config.seed, device=d.device,
                               progress=config.progress)
        d.barrier()
        cached = LatentCacheDataset(config.latent_cache, flip=data.flip, flip_seed=config.seed)
        return Data(cached, codec, False, cached.channels, cached.latent_size, image_size)
    return Data(data, codec, codec.downsample != 1, codec.latent_channels, codec.latent_size(image_size), image_size)


def read_model_spec(spec: str) -> str | dict:
    """A preset name, or a JSON file: our checkpoint config ({"model": {...}}) or a bare DiT config."""
    if spec.endswith(".json") or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise DitkitError(f"model config not found: {spec}")
        try:
            with open(spec) as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise DitkitError(f"cannot read the model config {spec}: {exc}") from exc
        return data.get("model", data) if isinstance(data, dict) else data
    return spec


def model_config_for(config: TrainConfig, data: Data, resumed: dict | None):
    """The DiTConfig to train; on resume it must be the checkpoint's."""
    flow = config.diffusion.process == "flow"  # a flow model predicts no variance
    model_config = resolve_config(read_model_spec(config.model), **config.model_overrides,
                                  input_size=data.input_size, in_channels=data.in_channels,
                                  num_classes=data.dataset.num_classes, learn_sigma=False if flow else None)
    if resumed is not None:
        saved = resumed["state"]["model_config"]
        if saved["num_classes"] != model_config.num_classes:
            raise DitkitError(f"cannot resume: the checkpoint's model has {saved['num_classes']} classes but the "
                              f"data has {model_config.num_classes}")
        diffs = [k for k in saved if saved[k] != model_config.to_dict().get(k)]
        if diffs:
            raise DitkitError(f"cannot resume: the model config differs from the checkpoint's in {', '.join(diffs)}")
    return model_config


def data_order(config: TrainConfig, d: Dist, data: Data) -> ResumableShardBatches:
    order = ResumableShardBatches(len(data.dataset), config.global_batch_size // d.world_size, d.rank,
                                  d.world_size, config.seed)
    if order.batches_per_epoch == 0:
        raise DitkitError(f"the dataset has {len(data.dataset)} items, fewer than one global batch of "
                          f"{config.global_batch_size}; lower --global-batch-size")
    return order


def load_init_weights(model, path: str) -> list[str]:
    """Finetuning: load ``path``'s weights into ``model``; a different class count resizes the label
    table (fresh class rows, the learned null row kept), and parameters the model names in
    ``finetune_addable`` (paths that start as a no-op) may be absent from the source. Returns notes on what
    was adapted."""
    source = load_model(path).state_dict()
    target = model.state_dict()
    notes, mismatched, fresh = [], [], []
    table = "y_embedder.embedding_table.weight"
    addable = tuple(getattr(model, "finetune_addable", ()))
    with torch.no_grad():
        for key, value in target.items():
            if key not in source:
                if key == table:
                    notes.append("the source is unconditional: the label table starts fresh")
                elif addable and key.startswith(addable):
                    fresh.append(key)
                else:
                    mismatched.append(f"{key} (missing)")
            elif source[key].shape == value.shape:
                value.copy_(source[key])
            elif key == "pos_embed":
                notes.append("input size differs: the fixed sin-cos position table is rebuilt")
            elif key == table:
                old = source[key]
                value[-1].copy_(old[-1])  # the null (unconditional) embedding carries over
                notes.append(f"label table resized from {old.shape[0]} to {value.shape[0]} rows "
                             "(class rows start fresh, the null-class row is kept)")
            else:
                mismatched.append(f"{key} {tuple(source[key].shape)} vs {tuple(value.shape)}")
    if mismatched:
        raise DitkitError(f"--init-from {path} does not fit this model: {'; '.join(mismatched[:3])}"
                          + (f" and {len(mismatched) - 3} more" if len(mismatched) > 3 else ""))
    if fresh:
        notes.append(f"new in this model, starting as initialised (a no-op, so it starts as the source): "
                     f"{', '.join(sorted({k.split('.')[0] for k in fresh}))}")
    dropped = sorted(k for k in source if k not in target)
    if dropped:
        notes.append(f"not in this model, dropped from the source: {', '.join(sorted({k.split('.')[0] for k in dropped}))}")
    return notes


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def make_optimizer(params, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW as the paper (constant lr), with torch's fused kernel (CPU and CUDA): one pass over all
    parameters instead of a Python loop of small ops per tensor (torch's CPU default). At DiT-S/2 on one
    CPU thread a step of the optimizer took 24 ms of CPU time fused, 88-153 ms foreach, 102-125 ms in the loop."""
    betas = (0.9, config.adam_beta2)
    if config.adamw_moments == "bf16":
        return AdamWBf16Moments(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, betas=betas, weight_decay=config.weight_decay, fused=True)


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warm-up, then constant. A function of the
    step alone, so a resumed run continues the schedule exactly."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr


def build_state(config: TrainConfig, d: Dist, model_config, resumed: dict | None, meta: dict, family):
    """Model (same initial weights on every rank), EMA, wrappers, optimizer — then the resumed state if any.
    Returns the state and notes from ``--init-from``. The run's ``family`` (``families.py``) builds the
    model, loads its ``--init-from`` and says how a checkpoint's EMA is exported."""
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = family.create_model(model_config).to(d.device)
    notes = family.load_init(model, config, resumed)
    ema = make_ema(model)
    # Per-rank streams for timesteps, noise and label dropout (the reference: seed * world + rank).
    seed_everything(config.seed * d.world_size + d.rank)
    model.gradient_checkpointing = config.grad_checkpointing
    model.train()
    net = model
    if config.compile:  # per block where the model offers it: one block's warm-up (DiT-S/2 CPU: 93 s vs 425 s)
        net = model.compile_blocks() if hasattr(model, "compile_blocks") else torch.compile(model)
    if config.fsdp:
        if not d.enabled:
            raise DitkitError("--fsdp needs several processes: launch with torchrun --nproc_per_node=N")
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        if resumed is not None:  # FSDP flattens the parameters: load the full weights before wrapping
            model.load_state_dict(resumed["model"])
        net = FSDP(net, use_orig_params=True, device_id=d.device)  # an explicit cpu device works with gloo
    elif d.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    state = TrainState(model=model, net=net, ema=ema, optimizer=make_optimizer(net.parameters(), config, d.device),
                       scaler=scaler, meta=meta, fsdp=config.fsdp, export=family.export)
    if config.optimizer_in_backward:
        state.backward_step = OptimizerInBackward(state.optimizer)
    if resumed is not None:
        state.load(resumed, d)
    return state, notes


def check_dispersive(config: TrainConfig, model_config, family) -> None:
    """The dispersive loss needs a DiT (its blocks) and a block that exists: one DitkitError otherwise."""
    if not family.trains_dit:
        raise DitkitError(f"--dispersive-loss applies to DiT runs, not to a {family.name} run")
    block, depth = config.dispersive_block, model_config.depth
    if block is not None and not 0 <= block < depth:
        raise DitkitError(f"--dispersive-block must be between 0 and {depth - 1} (the model's blocks), got {block}")
