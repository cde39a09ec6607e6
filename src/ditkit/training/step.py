"""One optimizer step, and the loss it minimises as a pluggable objective.

An *objective* is any callable ``objective(net, batch, generator) -> dict of per-sample losses`` with a
``"loss"`` entry (the one that is minimised; other entries are logged). ``batch`` is a dict of tensors
already on the device (``{"x": latents, "y": labels}`` for class-conditional DiT; a text-to-image or
UniDiffuser objective reads its own keys). ``generator`` is None for the global per-rank stream (the
default, which resumes exactly) or a ``torch.Generator`` the objective draws timesteps and noise from.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch

from .dispersive import BlockStates, dispersive_loss
from .ema import ema_decay_at, update_ema
from .state import TrainState

Batch = dict[str, torch.Tensor]
Objective = Callable[[torch.nn.Module, Batch, "torch.Generator | None"], dict[str, torch.Tensor]]


class DiffusionObjective:
    """The DiT objective: the process's loss at a time it draws — the Improved-DDPM hybrid loss (mse + vb) at a
    uniform timestep, or flow matching's velocity loss (``diffusion/flow.py``).

    batch: ``x`` (N, C, H, W) clean latents; ``y`` (N,) labels, absent for unconditional models.
    """

    def __init__(self, diffusion, dispersive: float = 0.0, dispersive_block: int | None = None):
        self.diffusion = diffusion
        self.dispersive, self.dispersive_block = dispersive, dispersive_block  # weight 0: no regulariser

    def __call__(self, net, batch: Batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        x, y = batch["x"], batch.get("y")
        t = self.diffusion.sample_training_t(x.shape[0], x.device, generator)
        noise = None if generator is None else torch.randn(x.shape, generator=generator, device=x.device,
                                                            dtype=x.dtype)
        # the network may run in half precision under autocast; the diffusion losses (logs, VLB) run in fp32
        def losses():
            return self.diffusion.training_losses(lambda x_t, tt: net(x_t, tt, y).float(), x, t, noise)

        if not self.dispersive:
            return losses()
        with BlockStates(net, self.dispersive_block) as states:
            terms = losses()
        terms["dispersive"] = dispersive_loss(states.state).expand_as(terms["loss"])  # one value per batch
        terms["loss"] = terms["loss"] + self.dispersive * terms["dispersive"]
        return terms


@dataclass
class StepSettings:
    """What a step needs beyond the state: precision, clipping, EMA schedule."""

    device_type: str
    autocast_dtype: torch.dtype | None = None  # None: fp32, no autocast
    max_grad_norm: float | None = None
    ema_decay: float = 0.9999
    ema_warmup: bool = False

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)


def train_step(state: TrainState, objective: Objective, batch: Batch, settings: StepSettings, *,
               want_grad_norm: bool = False) -> dict[str, torch.Tensor]:
    """Forward, backward, AdamW, EMA; advances ``state.step`` and the data position by one batch.

    Returns this step's losses (batch means) as 0-d tensors on the device, not Python floats: reading them
    would make the host wait for the device every step. The loop reads them only at logging steps.
    ``grad_norm`` is computed when asked (logging steps) or when clipping.
    """
    with settings.autocast():
        losses = objective(state.net, batch, None)
    loss = losses["loss"].mean()
    if state.backward_step is not None:  # AdamW runs inside backward, tensor by tensor
        stats = {name: value.detach().mean() for name, value in losses.items()}
        grad_norm = state.backward_step.backward(loss, want_grad_norm)
        if grad_norm is not None:
            stats["grad_norm"] = grad_norm.detach()
        return _after_update(state, settings, stats)
    state.optimizer.zero_grad(set_to_none=True)  # frees the grads instead of writing zeros into them
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.unscale_(state.optimizer)
    else:
        loss.backward()
    stats = {name: value.detach().mean() for name, value in losses.items()}
    if want_grad_norm or settings.max_grad_norm:
        stats["grad_norm"] = _grad_norm(state, settings.max_grad_norm).detach().float()
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    return _after_update(state, settings, stats)


def _after_update(state: TrainState, settings: StepSettings, stats: dict) -> dict:
    _update_ema(state, ema_decay_at(state.step, settings.ema_decay, settings.ema_warmup))
    state.step += 1
    state.batch_in_epoch += 1
    return stats


def _grad_norm(state: TrainState, max_norm: float | None) -> torch.Tensor:
    """The global gradient norm; clips only when ``max_norm`` is set (the paper does not clip)."""
    if state.fsdp:
        return state.net.clip_grad_norm_(max_norm or float("inf"))
    params = list(state.model.parameters())
    if max_norm:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])


def _update_ema(state: TrainState, decay: float) -> None:
    if not state.fsdp:
        update_ema(list(state.ema.parameters()), list(state.model.parameters()), decay)
        return
    # FSDP: the EMA is a full copy on every rank; the full weights exist only inside this block
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with FSDP.summon_full_params(state.net, writeback=False):
        update_ema(list(state.ema.parameters()), list(state.model.parameters()), decay)
