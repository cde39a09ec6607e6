"""Just enough torch.distributed for sampling under ``torchrun``: rank, world size, barriers."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import DitkitError


@dataclass
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def pick_device(device: str | None, local_rank: int = 0) -> torch.device:
    """``device`` as given, else CUDA when present, else CPU; each local rank takes its own GPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError:
        raise DitkitError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DitkitError("CUDA was asked for but this machine (or this torch build) has none; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


@contextmanager
def sampling_ranks(device: torch.device):
    """Join the torchrun process group (gloo on CPU, NCCL on GPU) for the duration; plain single
    process otherwise. Ranks may wait long at a barrier while others sample a bigger share (e.g. on
    resume), so the timeout is generous; torchrun stops all ranks if one fails."""
    if not launched_by_torchrun() or dist.is_initialized():
        if dist.is_initialized():
            yield Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
        else:
            yield Ranks()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=timedelta(hours=24))
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    finally:
        dist.destroy_process_group()
