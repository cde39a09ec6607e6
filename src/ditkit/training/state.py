"""The training state — model, EMA, optimizer, step, data position, RNG streams — saved and restored as one.

``checkpoints/step-0000100/`` holds
  - ``config.json`` + ``model.safetensors`` — the EMA weights in our pretrained format (sample from it
    with ``ditkit sample --checkpoint``, load it with ``ditkit.load_model``);
  - ``train_model.safetensors`` — the raw (non-EMA) weights;
  - ``optimizer.pt`` — the optimizer state dict (tensors and numbers only; loaded with weights_only);
  - ``rng_states.pt`` — torch / CUDA / numpy / Python RNG state of every rank;
  - ``training_state.json`` — step, data position, world size, the resolved config, ditkit version.
The folder is written whole beside its final name and renamed into place (``ditkit.fileio.atomic_dir``),
so a crash never leaves a half-written checkpoint under a ``step-*`` name.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..checkpoints import save_pretrained
from ..distributed import Dist
from ..errors import DitkitError
from ..fileio import atomic_dir
from ..version import __version__

if TYPE_CHECKING:
    from .optimizer_in_backward import OptimizerInBackward

STATE_FILE = "training_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


# -- RNG state (stored as tensors and plain numbers so weights_only loading accepts it)

def capture_rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _cpu_state(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _test_pause(step: int) -> None:
    """Test hook: ``DITKIT_TEST_CHECKPOINT_PAUSE=STEP:SECONDS`` sleeps mid-write of that step's
    checkpoint, so a test can SIGKILL the run while the temp folder is half written."""
    spec = os.environ.get("DITKIT_TEST_CHECKPOINT_PAUSE")
    if spec:
        at, seconds = spec.split(":")
        if int(at) == step:
            time.sleep(float(seconds))


@dataclass
class TrainState:
    """Everything a run continues from. ``save`` writes it as one checkpoint folder, ``load`` restores it.

    ``model`` is the bare DiT, ``net`` what the step calls (the model or its DDP / FSDP / compiled wrapper);
    ``meta`` holds the run's constants stored with every checkpoint (config, model config, diffusion, codec,
    class names). ``epoch``/``batch_in_epoch`` are the data position: the next batch to train on.
    """

    model: torch.nn.Module
    net: torch.nn.Module
    ema: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None = None
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    meta: dict = field(default_factory=dict)
    fsdp: bool = False
    export: Callable | None = None  # export(ema, folder, extra): a non-DiT model's loadable folder (families.py)
    backward_step: OptimizerInBackward | None = None  # set when AdamW steps inside backward

    # -- saving: every rank gathers, rank 0 writes
    def save(self, checkpoint_dir: str, d: Dist, keep_last: int = 0) -> str:
        """Write ``checkpoint_dir/step-XXXXXXX`` atomically; prune to the newest ``keep_last`` (0 keeps all)."""
        rng_states = d.all_gather_object(capture_rng_state())
        model_state, optimizer_state = self._full_states()
        path = None
        if d.is_main:
            path = os.path.join(checkpoint_dir, f"step-{self.step:07d}")
            with atomic_dir(path, is_training_checkpoint, "a training checkpoint") as tmp:  # only one of ours
                self._write(str(tmp), model_state, optimizer_state, rng_states, d.world_size)
            if keep_last > 0:
                for old in list_checkpoints(checkpoint_dir)[:-keep_last]:
                    shutil.rmtree(old, ignore_errors=True)
        d.barrier()
        return d.broadcast_object(path)

    def _full_states(self) -> tuple[dict, dict]:
        if not self.fsdp:
            return self.model.state_dict(), self.optimizer.state_dict()
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(self.net, writeback=False):  # the full weights exist only in this block
            model_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return model_state, FSDP.optim_state_dict(self.net, self.optimizer)

    def _write(self, folder: str, model_state: dict, optimizer_state: dict, rng_states: list, world_size: int):
        m = self.meta
        extra = {"training_step": self.step, "weights": "ema", "train_config": m["config"],
                 **m.get("extra", {})}  # e.g. a text model's text encoder
        if self.export is not None:
            self.export(self.ema, folder, extra)
        else:
            save_pretrained(self.ema, folder, diffusion=m["diffusion"], codec=m["codec"],
                            class_names=m["class_names"], extra=extra)
        save_file(_cpu_state(model_state), os.path.join(folder, "train_model.safetensors"))
        _test_pause(self.step)
        torch.save(optimizer_state, os.path.join(folder, "optimizer.pt"))
        torch.save(rng_states, os.path.join(folder, "rng_states.pt"))
        record = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "world_size": world_size,
                  "global_batch_size": m["config"]["global_batch_size"], "config": m["config"],
                  "model_config": m["model_config"], "step": self.step, "ditkit_version": __version__}
        if self.scaler is not None:
            record["scaler"] = self.scaler.state_dict()
        with open(os.path.join(folder, STATE_FILE), "w") as f:  # last: its presence marks a complete folder
            json.dump(record, f, indent=2)

    # -- loading
    def load(self, checkpoint: dict, d: Dist) -> None:
        """Restore everything from :func:`load_checkpoint`'s result. The RNG streams come back only when the
        world size matches (else the run goes on, noted, but is not bit-identical)."""
        st = checkpoint["state"]
        if st["global_batch_size"] != self.meta["config"]["global_batch_size"]:
            raise DitkitError(f"cannot resume with --global-batch-size {self.meta['config']['global_batch_size']}: "
                              f"the checkpoint was trained with {st['global_batch_size']}")
        if not self.fsdp:  # FSDP flattens parameters when it wraps: build_state loaded them before that
            self.model.load_state_dict(checkpoint["model"])
        self.ema.load_state_dict(checkpoint["ema"])
        optimizer_state = checkpoint["optimizer"]
        if self.fsdp:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            optimizer_state = FSDP.optim_state_dict_to_load(self.net, self.optimizer, optimizer_state)
        self.optimizer.load_state_dict(optimizer_state)
        if self.scaler is not None and "scaler" in st:
            self.scaler.load_state_dict(st["scaler"])
        self.step, self.epoch, self.batch_in_epoch = st["step"], st["epoch"], st["batch_in_epoch"]
        if st["world_size"] == d.world_size:
            restore_rng_state(checkpoint["rng"][d.rank])
        elif d.is_main:
            print(f"ditkit train: note: resuming on {d.world_size} processes from a run on {st['world_size']}; "
                  "the data order and random streams are re-derived, so it is not bit-identical", file=sys.stderr)


def is_training_checkpoint(folder) -> bool:
    """Whether ``folder`` is a training checkpoint ditkit wrote (its training state file is there)."""
    return os.path.isfile(os.path.join(folder, STATE_FILE))


def list_checkpoints(checkpoint_dir: str) -> list[str]:
    """Complete checkpoints, oldest first (half-written temp folders are hidden and skipped)."""
    if not os.path.isdir(checkpoint_dir):
        return []
    found = []
    for name in os.listdir(checkpoint_dir):
        m = _STEP_DIR.match(name)
        path = os.path.join(checkpoint_dir, name)
        if m and os.path.isfile(os.path.join(path, STATE_FILE)):
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def resolve_resume(resume: str, run_dir: str) -> str:
    """``latest`` → the newest complete checkpoint of ``run_dir``; else a checkpoint folder path."""
    if resume == "latest":
        found = list_checkpoints(os.path.join(run_dir, "checkpoints"))
        if not found:
            raise DitkitError(f"--resume latest: no checkpoint in {os.path.join(run_dir, 'checkpoints')}")
        return found[-1]
    if not os.path.isfile(os.path.join(resume, STATE_FILE)):
        raise DitkitError(f"--resume {resume}: not a training checkpoint folder (no {STATE_FILE})")
    return resume


def load_checkpoint(path: str) -> dict:
    """A training checkpoint's contents: ``state`` (the JSON record), ``model``, ``ema``, ``optimizer``, ``rng``."""
    try:
        with open(os.path.join(path, STATE_FILE)) as f:
            state = json.load(f)
        return {
            "path": path,
            "state": state,
            "model": load_file(os.path.join(path, "train_model.safetensors")),
            "ema": load_file(os.path.join(path, "model.safetensors")),
            "optimizer": torch.load(os.path.join(path, "optimizer.pt"), weights_only=True, map_location="cpu"),
            "rng": torch.load(os.path.join(path, "rng_states.pt"), weights_only=True, map_location="cpu"),
        }
    except (OSError, ValueError, RuntimeError) as exc:
        raise DitkitError(f"cannot read the training checkpoint {path}: {exc}") from exc
