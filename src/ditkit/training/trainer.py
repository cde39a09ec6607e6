"""The training loop: readable top to bottom, the same code on one CPU and under torchrun.

    ditkit train --data mnist --model DiT-S/2 ...      (one process)
    torchrun --nproc_per_node=8 -m ditkit train ...     (DDP; --fsdp to shard the model)

Recipe (DiT paper): AdamW lr 1e-4, no weight decay, no warm-up, constant lr, EMA 0.9999, the global
batch split evenly over ranks, label dropout 0.1 (inside the model), the Improved-DDPM hybrid loss.
Setup lives in ``build.py``, the state in ``state.py``, one step in ``step.py``, the periodic work in
``hooks.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace

import torch

from ..diffusion import create_process
from ..distributed import Dist, setup, teardown
from ..fileio import atomic_write_json
from ..progress import progress_bar
from ..version import __version__
from .build import (Data, build_state, check_dispersive, check_writable, configure_machine, data_order, lr_at,
                    on_main_then_share, read_resume)
from .config import TrainConfig
from .families import RunFamily, family_for
from .hooks import CallbackHook, CheckpointHook, EvalHook, LogHook, Window
from .optimizer_in_backward import check_supported
from .outputs import MetricsLog, fork_rng_around, plot_curves
from .state import TrainState
from .step import Objective, StepSettings, train_step

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def train(config: TrainConfig | dict, *, eval_fn=None, eval_every: int | None = None,
          command_line: list[str] | None = None, objective: Objective | None = None) -> dict:
    """Train a DiT as ``config`` says; returns a summary (final step, last loss, checkpoint path, and
    ``already_done`` when a resumed run was already at ``max_steps``).

    ``eval_fn(ema_model, step) -> dict`` runs on rank 0 every ``eval_every`` (default ``config.fid_every``)
    steps; its numbers go to metrics.jsonl under ``"eval"`` and into the curves PNG. Without one, the run's
    own: its run family's ``eval_fn`` (``families.py``: FID for class runs).
    ``objective`` replaces the loss (default: the DiT hybrid loss; see ``step.py`` for the contract).
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    d = setup(config.device)
    finished = False
    try:
        summary = _run(config, d, eval_fn, config.fid_every if eval_every is None else eval_every,
                       command_line, objective)
        finished = True
        return summary
    finally:
        teardown(d, together=finished)


def _run(config: TrainConfig, d: Dist, eval_fn, eval_every: int, command_line, objective) -> dict:
    requested_precision = config.precision
    config = configure_machine(config, d)  # threads, TF32, precision "auto" resolved
    if config.optimizer_in_backward:  # before anything is written
        check_supported(config, d.enabled)
    run_dir = os.path.abspath(config.out)
    on_main_then_share(d, lambda: check_writable(run_dir))
    resumed = read_resume(config, run_dir)
    if resumed is not None and resumed["state"]["step"] >= config.max_steps:  # nothing left to do
        return {"step": resumed["state"]["step"], "loss": None, "checkpoint": resumed["path"],
                "run_dir": run_dir, "already_done": True}
    family = family_for(config)  # everything below asks it, never which family it is
    data = family.open(config, d)
    model_config = family.model_config(config, resumed)
    config = replace(config, diffusion=replace(config.diffusion, learn_sigma=model_config.learn_sigma))
    order = data_order(config, d, data)
    diffusion = create_process(config.diffusion)
    meta = _meta(config, requested_precision, data, model_config, family)
    state, notes = build_state(config, d, model_config, resumed, meta, family)
    objective = objective or _objective(config, diffusion, model_config, family)
    settings = StepSettings(d.device.type, AUTOCAST.get(config.precision), config.max_grad_norm,
                            config.ema_decay, config.ema_warmup)
    if eval_fn is None and eval_every:  # before the run folder (bad settings stop here, nothing written), and
        # on forked RNG streams: building it initialises modules, which must not draw from training's streams
        eval_fn = fork_rng_around(family.eval_fn, config, data)
    metrics = _start_run_folder(config, d, run_dir, data, meta, notes, resumed, command_line) if d.is_main else None
    debug_dir = os.environ.get("DITKIT_TRAIN_DEBUG_DIR")  # per-rank record of samples seen and final weights
    if debug_dir:
        order.history = []
    batches = _batches(data, order, state, d, config)
    window = Window(d, config.global_batch_size)
    window.last_checkpoint = resumed["path"] if resumed else None
    bar = progress_bar(total=config.max_steps, initial=state.step, desc="training", unit="step",
                       disable=not (config.progress and d.is_main), dynamic_ncols=True)
    log = LogHook(window, metrics, bar, config.log_every, config.max_steps)
    hooks = _periodic_hooks(config, d, run_dir, data, family, window, metrics, eval_fn, eval_every)
    try:
        # -- the loop: step, then the periodic work that is due (only logging reads numbers back)
        while state.step < config.max_steps:
            for group in state.optimizer.param_groups:
                group["lr"] = lr_at(state.step, config)
            stats = train_step(state, objective, next(batches), settings, want_grad_norm=log.due(state.step + 1))
            window.add(stats)
            bar.update(1)
            if log.due(state.step):
                log(state)
            with window.paused():
                for hook in hooks:
                    if hook.due(state.step):
                        hook(state)
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    if d.is_main:
        plot_curves(metrics.path, os.path.join(run_dir, "loss_curve.png"))
    if debug_dir:
        _write_debug(debug_dir, d.rank, order.history, state)
    return {"step": state.step, "loss": log.last_loss, "checkpoint": window.last_checkpoint, "run_dir": run_dir}


def _meta(config: TrainConfig, requested_precision: str, data: Data, model_config, family: RunFamily) -> dict:
    """What every checkpoint and train_config.json record of the run."""
    return {"config": config.to_dict(), "model_config": model_config.to_dict(), "codec": data.codec.to_config(),
            "class_names": list(data.dataset.class_names) or None, "diffusion": config.diffusion.to_dict(),
            "precision": {"requested": requested_precision, "resolved": config.precision},
            "extra": family.extra()}


def _objective(config: TrainConfig, diffusion, model_config, family: RunFamily) -> Objective:
    """The run's loss: the family's, plus the dispersive loss if asked (it reads a DiT's blocks)."""
    objective = family.objective(diffusion)
    if config.dispersive_loss:
        check_dispersive(config, model_config, family)
        objective.dispersive, objective.dispersive_block = config.dispersive_loss, config.dispersive_block
    return objective


def _periodic_hooks(config: TrainConfig, d: Dist, run_dir: str, data: Data, family: RunFamily, window, metrics,
                    eval_fn, eval_every: int) -> list:
    """Checkpoints (every rank), and on rank 0 the family's cache, progress output and the evaluation."""
    hooks = [CheckpointHook(window, os.path.join(run_dir, "checkpoints"), config.ckpt_every, config.keep_last,
                            config.max_steps)]
    if d.is_main:  # the family's cache (a text run's encodings) at each checkpoint and the end: a resumed run reuses it
        hooks.append(CallbackHook(family.save_cache, config.ckpt_every, config.max_steps))
    if d.is_main and config.sample_every:
        hooks.append(family.grid_hook(run_dir, data.codec, config))
    if d.is_main and eval_fn is not None and eval_every:
        hooks.append(EvalHook(eval_fn, metrics, eval_every, config.max_steps))
    return hooks


def _batches(data: Data, order, state: TrainState, d: Dist, config: TrainConfig):
    """Batches as dicts on the device, from the state's data position on, epoch after epoch (forever)."""
    loader = torch.utils.data.DataLoader(
        data.dataset, batch_sampler=order, num_workers=config.num_workers, pin_memory=d.device.type == "cuda",
        # its own generator: creating worker iterators must not draw from the training RNG stream
        generator=torch.Generator().manual_seed(config.seed))
    conditional = data.dataset.num_classes > 0
    while True:
        if state.batch_in_epoch >= order.batches_per_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        order.set_position(state.epoch, state.batch_in_epoch)
        data.dataset.set_epoch(state.epoch)
        for item in loader:
            batch = item if isinstance(item, dict) else {"x": item[0], "y": item[1]}
            batch = {k: v.to(d.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            if data.encode_on_the_fly:
                with torch.no_grad():
                    batch["x"] = data.codec.encode(batch["x"])
            if not conditional:
                batch.pop("y", None)
            yield batch


def _start_run_folder(config: TrainConfig, d: Dist, run_dir: str, data: Data, meta: dict, notes: list[str],
                      resumed: dict | None, command_line) -> MetricsLog:
    """``train_config.json`` (everything needed to reproduce the run), the metrics log, start-up notes."""
    os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
    ds = data.dataset
    record = {"ditkit_version": __version__, "command": command_line, "seed": config.seed,
              "world_size": d.world_size, "device": str(d.device), "precision": meta["precision"],
              "config": meta["config"], "model_config": meta["model_config"], "diffusion": meta["diffusion"],
              "codec": meta["codec"], "data": {"name": getattr(ds, "name", config.data), "size": len(ds),
              "image_size": data.image_size, "num_classes": ds.num_classes, "class_names": list(ds.class_names),
              "skipped_images": getattr(ds, "num_skipped", 0)},
              "init_from_notes": notes, "resumed_from": resumed["path"] if resumed else None}
    atomic_write_json(os.path.join(run_dir, "train_config.json"), record)
    if meta["precision"]["requested"] == "auto":
        native = "native bf16" if config.precision == "bf16" else "no native bf16"
        print(f"ditkit train: precision auto → {config.precision} ({d.device.type}: {native})", file=sys.stderr)
    for note in notes:
        print(f"ditkit train: {note}", file=sys.stderr)
    if not config.ema_warmup and config.max_steps * (1 - config.ema_decay) < 5:
        print(f"ditkit train: note: with {config.max_steps} steps an EMA decay of {config.ema_decay} barely "
              "moves from the initial weights; consider --ema-warmup or a smaller --ema-decay", file=sys.stderr)
    return MetricsLog(run_dir, resumed["state"]["step"] if resumed else None, config.tensorboard)


def _write_debug(debug_dir: str, rank: int, seen: list[int], state: TrainState) -> None:
    def digest(module):
        h = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    os.makedirs(debug_dir, exist_ok=True)
    with open(os.path.join(debug_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "seen": seen, "model_sha256": digest(state.model), "ema_sha256": digest(state.ema)}, f)
