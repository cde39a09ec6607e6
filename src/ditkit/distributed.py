"""torchrun process groups, shared by training and sampling: NCCL on GPUs, gloo on CPUs, and a plain
single process when not launched by torchrun."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import DitkitError


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather_object(self, obj):
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average a small tensor over ranks (for logging and the NaN check: every rank decides alike)."""
        if self.enabled:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world_size
        return values


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


def setup(device: str | None = None, *, timeout: timedelta | None = None) -> Dist:
    """Join the torchrun process group if launched by torchrun (and not joined yet); pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        if world_size > 1:  # one GPU per local rank, whatever index was asked for
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        kwargs = {} if timeout is None else {"timeout": timeout}
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", **kwargs)
    return Dist(rank, world_size, local_rank, local_world, dev)


def teardown(d: Dist, *, together: bool = False) -> None:
    """Leave the process group. ``together`` (this rank ended well; were another to fail, torchrun stops
    this one): wait for all ranks first, since a rank tearing gloo down while another is still finishing its
    last collective can abort that one (SIGABRT, seen on 2 loaded cores). After an error, leave at once."""
    if d.enabled and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(device: str | None = None, *, timeout: timedelta | None = None):
    """``with process_group(device) as d:`` — joined for the block, left after it (unless it was
    already joined by the caller, e.g. sampling from inside a training run)."""
    joined_before = dist.is_initialized()
    d = setup(device, timeout=timeout)
    try:
        yield d
    except BaseException:
        if not joined_before:
            teardown(d)
        raise
    if not joined_before:
        teardown(d, together=True)
