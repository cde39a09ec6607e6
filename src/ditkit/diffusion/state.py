"""Sampler states with more than one tensor: a plain tensor, a tuple/list, or a dict of tensors.

UniDiffuser samples an image latent, a CLIP-image token and a text latent together. Samplers treat
their state ``x`` as a small tree of tensors that share the batch dimension and apply every update
leaf by leaf with :func:`tree_map`; a single tensor is the one-leaf case and costs one ``isinstance``.
The denoiser sees the same structure it returns: ``denoiser(x, t) -> output`` with ``output`` shaped
like ``x`` leaf for leaf (per leaf, learned-variance outputs carry twice the leaf's channels).

A different timestep per modality (UniDiffuser's conditional modes keep one modality clean at t = 0)
is the denoiser's business: the sampler steps the modalities it generates on one schedule, and a
wrapper holds the fixed ones and calls the network with their own timesteps (see ``fixed_modalities``).
"""

from __future__ import annotations

from typing import Callable, Mapping, Union

import torch

State = Union[torch.Tensor, tuple, list, Mapping]


def tree_map(fn: Callable, *states):
    """``fn`` applied leaf by leaf to states of one structure (a tensor, tuple/list or dict of tensors)."""
    first = states[0]
    if isinstance(first, torch.Tensor):  # the single-tensor fast path
        return fn(*states)
    if isinstance(first, Mapping):
        return {key: fn(*(s[key] for s in states)) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(fn(*leaves) for leaves in zip(*states))
    raise TypeError(f"a sampler state is a tensor, a tuple/list or a dict of tensors, not {type(first).__name__}")


def unzip(state, like) -> tuple:
    """A state whose leaves are tuples (``tree_map`` of a function with several results) → one state per
    result, each structured like ``like``."""
    if isinstance(like, torch.Tensor):
        return tuple(state)
    if isinstance(like, Mapping):
        width = len(next(iter(state.values())))
        return tuple({key: state[key][j] for key in like} for j in range(width))
    return tuple(type(like)(leaf[j] for leaf in state) for j in range(len(state[0])))


def leaves(state) -> list[torch.Tensor]:
    """The tensors of a state, in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    return list(state.values()) if isinstance(state, Mapping) else list(state)


def batch_size(state) -> int:
    """Rows of the state (every leaf shares the batch dimension)."""
    return leaves(state)[0].shape[0]


def like_first(state) -> torch.Tensor:
    """A leaf to take device and batch size from (timestep tensors are made to match it)."""
    return leaves(state)[0]


def fixed_modalities(denoiser: Callable, fixed: Mapping, timesteps: Mapping[str, int]) -> Callable:
    """A denoiser over the sampled modalities of a dict state, with ``fixed`` ones held at their own timesteps.

    ``denoiser(x, t)`` receives the full dict ``x`` (sampled and fixed modalities) and ``t`` as a dict of
    per-modality timesteps; the wrapper returns the outputs of the sampled modalities only.
    """

    def denoise(x: Mapping, t: torch.Tensor) -> dict:
        full = {**x, **fixed}
        per_modality = {key: t for key in x}
        per_modality.update({key: torch.full_like(t, int(timesteps[key])) for key in fixed})
        out = denoiser(full, per_modality)
        return {key: out[key] for key in x}

    return denoise
