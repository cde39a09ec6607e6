"""Training checkpoints: a folder that is both a ditkit pretrained model and a resumable state.

``checkpoints/step-0000100/`` holds
  - ``config.json`` + ``model.safetensors`` — the EMA weights in our pretrained format (sample from it
    with ``ditkit sample --ckpt``, load it with ``ditkit.load_model``);
  - ``train_model.safetensors`` — the raw (non-EMA) weights;
  - ``optimizer.pt`` — the optimizer state dict (tensors and numbers only; loaded with weights_only);
  - ``rng_states.pt`` — torch / CUDA / numpy / Python RNG state of every rank;
  - ``training_state.json`` — step, data position, world size, the resolved config, ditkit version.
It is written into a hidden temp folder and renamed into place; ``training_state.json`` is written
last, so a folder without it is never taken for a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import DitkitError
from ..version import __version__

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


# -- the pretrained half (reuses ditkit.checkpoints when it exists)

def _contiguous_state(model_or_state) -> dict[str, torch.Tensor]:
    sd = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else model_or_state
    return {k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
            for k, v in sd.items()}


def write_pretrained(model, path: str, *, diffusion: dict, codec: dict, class_names, extra: dict) -> None:
    """``config.json`` + ``model.safetensors`` in the team's pretrained format."""
    try:
        from ..checkpoints import save_pretrained
    except ImportError:
        save_pretrained = None
    if save_pretrained is not None:
        save_pretrained(model, path, diffusion=diffusion, codec=codec, class_names=class_names, extra=extra)
        return
    save_file(_contiguous_state(model), os.path.join(path, "model.safetensors"))
    config = {"format": "ditkit", "ditkit_version": __version__, "model": model.config.to_dict(),
              "diffusion": diffusion, "codec": codec, "class_names": class_names, "extra": extra}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def _test_pause(step: int) -> None:
    """Test hook: ``DITKIT_TEST_CHECKPOINT_PAUSE=STEP:SECONDS`` sleeps mid-write of that step's
    checkpoint, so a test can SIGKILL the run while the temp folder is half written."""
    spec = os.environ.get("DITKIT_TEST_CHECKPOINT_PAUSE")
    if spec:
        at, seconds = spec.split(":")
        if int(at) == step:
            time.sleep(float(seconds))


def save_checkpoint(checkpoint_dir: str, step: int, *, ema_model, model_state: dict, optimizer_state: dict,
                    rng_states: list[dict], state: dict, diffusion: dict, codec: dict, class_names,
                    keep_last: int) -> str:
    """Write ``step-XXXXXXX`` atomically; prune to the newest ``keep_last`` (0 = keep all)."""
    os.makedirs(checkpoint_dir, exist_ok=True)
    final = os.path.join(checkpoint_dir, f"step-{step:07d}")
    tmp = tempfile.mkdtemp(prefix=f".step-{step:07d}-", dir=checkpoint_dir)
    try:
        write_pretrained(ema_model, tmp, diffusion=diffusion, codec=codec, class_names=class_names,
                         extra={"training_step": step, "weights": "ema", "train_config": state["config"]})
        save_file(_contiguous_state(model_state), os.path.join(tmp, "train_model.safetensors"))
        _test_pause(step)
        torch.save(optimizer_state, os.path.join(tmp, "optimizer.pt"))
        torch.save(rng_states, os.path.join(tmp, "rng_states.pt"))
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump(dict(state, step=step, ditkit_version=__version__), f, indent=2)
        if os.path.exists(final):  # re-reaching a step after resuming from an older checkpoint
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep_last > 0:
        for old in list_checkpoints(checkpoint_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


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
    """Everything needed to continue: weights, EMA, optimizer, RNG states, step and data position."""
    try:
        with open(os.path.join(path, STATE_FILE)) as f:
            state = json.load(f)
        return {
            "state": state,
            "model": load_file(os.path.join(path, "train_model.safetensors")),
            "ema": load_file(os.path.join(path, "model.safetensors")),
            "optimizer": torch.load(os.path.join(path, "optimizer.pt"), weights_only=True, map_location="cpu"),
            "rng": torch.load(os.path.join(path, "rng_states.pt"), weights_only=True, map_location="cpu"),
        }
    except (OSError, ValueError, RuntimeError) as exc:
        raise DitkitError(f"cannot read the training checkpoint {path}: {exc}") from exc
