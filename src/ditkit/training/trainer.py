"""The training loop: readable top to bottom, the same code on one CPU and under torchrun.

    ditkit train --data mnist --model DiT-S/2 ...      (one process)
    torchrun --nproc_per_node=8 -m ditkit train ...     (DDP; --fsdp to shard the model)

Recipe (DiT paper): AdamW lr 1e-4, no weight decay, no warm-up, constant lr, EMA 0.9999, the global
batch split evenly over ranks, label dropout 0.1 (inside the model), the Improved-DDPM hybrid loss.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
import warnings
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from ..codecs import make_codec
from ..data import LatentCacheDataset, build_latent_cache, load_dataset
from ..diffusion import create_diffusion
from ..errors import DitkitError
from ..models import create_model, resolve_config
from ..version import __version__
from . import state as ckpt
from .config import TrainConfig
from ..distributed import Dist, setup, teardown
from .ema import ema_decay_at, make_ema, update_ema
from .outputs import MetricsLog, atomic_write_text, fork_rng_around, plot_curves, save_sample_grid
from .data_order import ResumableShardBatches


def train(config: TrainConfig | dict, *, eval_fn=None, eval_every: int = 0, command_line: list[str] | None = None) -> dict:
    """Train a DiT as ``config`` says; returns a summary (final step, last loss, checkpoint path).

    ``eval_fn(ema_model, step) -> dict`` runs on rank 0 every ``eval_every`` steps (e.g. FID); its
    numbers go to metrics.jsonl under ``"eval"`` and into the curves PNG.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    d = setup(config.device)
    try:
        return _train(config, d, eval_fn, eval_every, command_line)
    finally:
        teardown(d)


# --------------------------------------------------------------------------------------------
# Setup helpers
# --------------------------------------------------------------------------------------------

def _on_main_then_share(d: Dist, fn):
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


def _check_writable(run_dir: str) -> None:
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise DitkitError(f"cannot write to the output folder {run_dir}: {exc.strerror or exc}") from exc


def _read_model_spec(spec: str) -> str | dict:
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


def _open_data(config: TrainConfig, d: Dist):
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
        codec = make_codec(data.codec_config)
        return data, codec, data.channels, data.latent_size, data.image_size
    codec = make_codec(config.vae, image_channels=data.channels)
    if config.latent_cache:
        if d.is_main and not os.path.isfile(os.path.join(config.latent_cache, "cache.json")):
            build_latent_cache(data, codec.to(d.device), config.latent_cache, seed=config.seed,
                               device=d.device, progress=config.progress)
        d.barrier()
        cached = LatentCacheDataset(config.latent_cache, flip=data.flip, flip_seed=config.seed)
        return cached, codec, cached.channels, cached.latent_size, image_size
    return data, codec, codec.latent_channels, codec.latent_size(image_size), image_size


def _load_init_weights(model, path: str) -> list[str]:
    """Finetuning: load ``path``'s weights into ``model``; a different class count resizes the label
    table (fresh class rows, the learned null row kept). Returns notes on what was adapted."""
    try:
        from ..checkpoints import load_model
    except ImportError:
        load_model = None
    if load_model is not None:
        source = load_model(path).state_dict()
    elif os.path.isdir(path):
        from safetensors.torch import load_file

        source = load_file(os.path.join(path, "model.safetensors"))
    else:
        if not os.path.isfile(path):
            raise DitkitError(f"--init-from: checkpoint not found: {path}")
        source = torch.load(path, map_location="cpu", weights_only=True)
        source = source.get("ema", source) if isinstance(source, dict) else source
    target = model.state_dict()
    notes, mismatched = [], []
    table = "y_embedder.embedding_table.weight"
    with torch.no_grad():
        for key, value in target.items():
            if key not in source:
                if key == table:
                    notes.append("the source is unconditional: the label table starts fresh")
                    continue
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
    return notes


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def _train(config: TrainConfig, d: Dist, eval_fn, eval_every: int, command_line) -> dict:
    run_dir = os.path.abspath(config.out)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    if config.threads:
        torch.set_num_threads(config.threads)
    elif d.device.type == "cpu" and d.local_world_size > 1:  # don't oversubscribe the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.local_world_size))
    if d.device.type == "cuda" and config.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if config.precision == "fp16" and d.device.type != "cuda":
        raise DitkitError("--precision fp16 needs a CUDA GPU (use bf16 on CPU)")
    if config.global_batch_size % d.world_size:
        raise DitkitError(f"the global batch size {config.global_batch_size} does not split evenly over "
                          f"{d.world_size} processes")
    local_batch = config.global_batch_size // d.world_size
    _on_main_then_share(d, lambda: _check_writable(run_dir))

    # -- resume state (read before building anything, so a bad checkpoint fails fast)
    resumed = None
    if config.resume:
        path = ckpt.resolve_resume(config.resume, run_dir)
        resumed = ckpt.load_checkpoint(path)
        resumed["path"] = path

    # -- data and model
    data, codec, in_channels, input_size, image_size = _open_data(config, d)
    on_the_fly_codec = codec.downsample != 1 and not isinstance(data, LatentCacheDataset)
    codec = codec.to(d.device)
    model_config = resolve_config(_read_model_spec(config.model), **config.model_overrides,
                                  input_size=input_size, in_channels=in_channels, num_classes=data.num_classes)
    if resumed is not None:
        saved = resumed["state"]["model_config"]
        if saved["num_classes"] != model_config.num_classes:
            raise DitkitError(f"cannot resume: the checkpoint's model has {saved['num_classes']} classes but the "
                              f"data has {model_config.num_classes}")
        diffs = [k for k in saved if saved[k] != model_config.to_dict().get(k)]
        if diffs:
            raise DitkitError(f"cannot resume: the model config differs from the checkpoint's in {', '.join(diffs)}")
    batches = ResumableShardBatches(len(data), local_batch, d.rank, d.world_size, config.seed)
    if batches.batches_per_epoch == 0:
        raise DitkitError(f"the dataset has {len(data)} items, fewer than one global batch of "
                          f"{config.global_batch_size}; lower --global-batch-size")

    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = create_model(model_config).to(d.device)
    notes = _load_init_weights(model, config.init_from) if config.init_from and resumed is None else []
    ema = make_ema(model)
    # Per-rank streams for timesteps, noise and label dropout (the reference: seed * world + rank).
    _seed_everything(config.seed * d.world_size + d.rank)
    step, epoch, batch_in_epoch = 0, 0, 0
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        ema.load_state_dict(resumed["ema"])
        st = resumed["state"]
        step, epoch, batch_in_epoch = st["step"], st["epoch"], st["batch_in_epoch"]
        if st["world_size"] == d.world_size:
            ckpt.restore_rng_state(resumed["rng"][d.rank])
        elif d.is_main:
            print(f"ditkit train: note: resuming on {d.world_size} processes from a run on {st['world_size']}; "
                  "the data order and random streams are re-derived, so it is not bit-identical", file=sys.stderr)
        if st["global_batch_size"] != config.global_batch_size:
            raise DitkitError(f"cannot resume with --global-batch-size {config.global_batch_size}: the checkpoint "
                              f"was trained with {st['global_batch_size']}")
    model.gradient_checkpointing = config.grad_checkpointing
    model.train()

    # -- wrap for the device(s)
    net = model
    if config.compile:
        net = torch.compile(net)
    if config.fsdp:
        if not d.enabled:
            raise DitkitError("--fsdp needs several processes: launch with torchrun --nproc_per_node=N")
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        net = FSDP(net, use_orig_params=True, device_id=d.device)  # an explicit cpu device works with gloo
    elif d.enabled:
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if resumed is not None:
        opt_state = resumed["optimizer"]
        if config.fsdp:
            opt_state = FSDP.optim_state_dict_to_load(net, optimizer, opt_state)
        optimizer.load_state_dict(opt_state)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    if scaler is not None and resumed is not None and "scaler" in resumed["state"]:
        scaler.load_state_dict(resumed["state"]["scaler"])
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    autocast = (lambda: torch.autocast(d.device.type, dtype=autocast_dtype)) if autocast_dtype else nullcontext
    diffusion = create_diffusion(None, noise_schedule=config.noise_schedule, learn_sigma=model_config.learn_sigma,
                                 diffusion_steps=config.diffusion_steps)
    diffusion_record = {"diffusion_steps": config.diffusion_steps, "noise_schedule": config.noise_schedule,
                        "learn_sigma": model_config.learn_sigma}
    ema_params = list(ema.parameters())
    model_params = list(model.parameters())

    debug_dir = os.environ.get("DITKIT_TRAIN_DEBUG_DIR")  # per-rank record of samples seen and final weights
    if debug_dir:
        batches.history = []
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=batches, num_workers=config.num_workers, pin_memory=d.device.type == "cuda",
        # its own generator: creating worker iterators must not draw from the training RNG stream
        generator=torch.Generator().manual_seed(config.seed))

    # -- the run folder
    metrics = None
    if d.is_main:
        os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
        record = {"ditkit_version": __version__, "command": command_line, "seed": config.seed,
                  "world_size": d.world_size, "device": str(d.device), "config": config.to_dict(),
                  "model_config": model_config.to_dict(), "diffusion": diffusion_record,
                  "codec": codec.to_config(), "data": {"name": getattr(data, "name", config.data), "size": len(data),
                  "image_size": image_size, "num_classes": data.num_classes, "class_names": list(data.class_names),
                  "skipped_images": getattr(data, "num_skipped", 0)},
                  "init_from_notes": notes, "resumed_from": resumed["path"] if resumed else None}
        atomic_write_text(os.path.join(run_dir, "train_config.json"), json.dumps(record, indent=2) + "\n")
        metrics = MetricsLog(run_dir, step if resumed else None, config.tensorboard)
        for note in notes:
            print(f"ditkit train: {note}", file=sys.stderr)
        if not config.ema_warmup and config.max_steps * (1 - config.ema_decay) < 5:
            print(f"ditkit train: note: with {config.max_steps} steps an EMA decay of {config.ema_decay} barely "
                  "moves from the initial weights; consider --ema-warmup or a smaller --ema-decay", file=sys.stderr)
    class_names = list(data.class_names) or None
    last_ckpt = resumed["path"] if resumed else None

    def save(at_step: int) -> str:
        rng_states = d.all_gather_object(ckpt.capture_rng_state())
        if config.fsdp:
            state, ema_for_save, opt_state = _fsdp_full_states(net, model, ema, optimizer)
        else:
            state, ema_for_save, opt_state = model.state_dict(), ema, optimizer.state_dict()
        path = None
        if d.is_main:
            train_state = {"epoch": epoch, "batch_in_epoch": batch_in_epoch, "world_size": d.world_size,
                           "global_batch_size": config.global_batch_size, "config": config.to_dict(),
                           "model_config": model_config.to_dict()}
            if scaler is not None:
                train_state["scaler"] = scaler.state_dict()
            path = ckpt.save_checkpoint(ckpt_dir, at_step, ema_model=ema_for_save, model_state=state,
                                        optimizer_state=opt_state, rng_states=rng_states, state=train_state,
                                        diffusion=diffusion_record, codec=codec.to_config(),
                                        class_names=class_names, keep_last=config.keep_last)
        d.barrier()
        return path

    # -- the loop
    bar = tqdm(total=config.max_steps, initial=step, desc="training", unit="step",
               disable=not (config.progress and d.is_main), dynamic_ncols=True)
    window, window_time, window_images = [], 0.0, 0
    last_loss = None
    try:
        while step < config.max_steps:
            if batch_in_epoch >= batches.batches_per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
            batches.set_position(epoch, batch_in_epoch)
            data.set_epoch(epoch)
            for x, y in loader:
                t0 = time.perf_counter()
                x = x.to(d.device, non_blocking=True)
                if on_the_fly_codec:
                    with torch.no_grad():
                        x = codec.encode(x)
                y = y.to(d.device, non_blocking=True) if model_config.num_classes > 0 else None
                t = torch.randint(0, diffusion.num_timesteps, (x.shape[0],), device=d.device)
                with autocast():
                    # fp32 from here: the diffusion losses (logs, VLB) are not for half precision
                    losses = diffusion.training_losses(lambda x_t, tt: net(x_t, tt, y).float(), x, t)
                loss = losses["loss"].mean()
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                grad_norm = _grad_norm(net, model_params, config)
                stats = d.mean(torch.stack([loss.detach(), losses["mse"].detach().mean(),
                                            losses["vb"].detach().mean(), grad_norm.detach().float()]).float())
                if not math.isfinite(stats[0].item()):
                    raise DitkitError(
                        f"the loss became {stats[0].item()} at step {step + 1}; training stopped without saving it. "
                        + (f"The last good checkpoint is {last_ckpt}" if last_ckpt else "No checkpoint was written yet")
                        + " (try a lower --lr, or --precision fp32)")
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if config.fsdp:
                    _fsdp_update_ema(net, model, ema_params, ema_decay_at(step, config.ema_decay, config.ema_warmup))
                else:
                    update_ema(ema_params, model_params, ema_decay_at(step, config.ema_decay, config.ema_warmup))
                step += 1
                batch_in_epoch += 1
                if d.device.type == "cuda":
                    torch.cuda.synchronize()
                window_time += time.perf_counter() - t0
                window_images += config.global_batch_size
                loss_v, mse_v, vb_v, gn_v = stats.tolist()
                window.append((loss_v, mse_v, vb_v))
                last_loss = loss_v
                bar.update(1)
                if d.is_main and (step % config.log_every == 0 or step == config.max_steps):
                    mean = np.mean(window, axis=0).tolist()
                    ips = window_images / max(window_time, 1e-9)
                    metrics.log({"step": step, "epoch": epoch, "loss": mean[0], "mse": mean[1], "vb": mean[2],
                                 "lr": optimizer.param_groups[0]["lr"], "grad_norm": gn_v, "img_per_s": ips})
                    bar.set_postfix(loss=f"{mean[0]:.4f}", img_s=f"{ips:.1f}")
                    window, window_time, window_images = [], 0.0, 0
                if step % config.ckpt_every == 0 or step == config.max_steps:
                    last_ckpt = save(step)
                    last_ckpt = d.broadcast_object(last_ckpt)
                if d.is_main and config.sample_every and (step % config.sample_every == 0 or step == config.max_steps):
                    fork_rng_around(save_sample_grid, ema, codec, os.path.join(run_dir, "samples", f"step-{step:07d}.png"),
                                    count=config.sample_count, steps=config.sample_steps, cfg_scale=config.sample_cfg,
                                    seed=config.seed)
                if eval_fn is not None and eval_every and d.is_main and (step % eval_every == 0 or step == config.max_steps):
                    results = fork_rng_around(eval_fn, ema, step) or {}
                    metrics.log({"step": step, "eval": {k: float(v) for k, v in results.items()}})
                if step >= config.max_steps:
                    break
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    if d.is_main:
        plot_curves(metrics.path, os.path.join(run_dir, "loss_curve.png"))
    if debug_dir:
        _write_debug(debug_dir, d.rank, batches.history, model, ema)
    return {"step": step, "loss": last_loss, "checkpoint": last_ckpt, "run_dir": run_dir}


def _write_debug(debug_dir: str, rank: int, seen: list[int], model, ema) -> None:
    import hashlib

    def digest(module):
        h = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    os.makedirs(debug_dir, exist_ok=True)
    with open(os.path.join(debug_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "seen": seen, "model_sha256": digest(model), "ema_sha256": digest(ema)}, f)


def _grad_norm(net, params, config: TrainConfig) -> torch.Tensor:
    """The global gradient norm (logged); clips only when --max-grad-norm is set (the paper does not)."""
    if config.fsdp:
        return net.clip_grad_norm_(config.max_grad_norm or float("inf"))
    if config.max_grad_norm:
        return torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads)


# -- FSDP: the EMA stays a full copy on every rank; full weights are gathered to update and to save it

def _fsdp_update_ema(net, model, ema_params, decay: float) -> None:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.summon_full_params(net, writeback=False):  # the full weights exist only inside this block
        update_ema(ema_params, list(model.parameters()), decay)


def _fsdp_full_states(net, model, ema, optimizer):
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.summon_full_params(net, writeback=False):
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    opt_state = FSDP.optim_state_dict(net, optimizer)
    return state, ema, opt_state
