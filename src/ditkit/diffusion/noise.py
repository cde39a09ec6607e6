"""Noise that depends only on (seed, sample index): batch-invariant sampling without padding.

Every sample gets its own ``torch.Generator`` seeded from ``(seed, index)``; the starting noise and each
stochastic step's fresh noise are drawn row by row on the CPU (so a seed gives the same numbers on every
device). Which batch, rank or resumed run draws sample ``i``, and how many samples are drawn beside it,
then change nothing about its noise, and a batch can be sized to the request.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .state import tree_map


def sample_seed(seed: int, index: int) -> int:
    """A 64-bit seed for sample ``index`` of a run seeded with ``seed``.

    numpy's SeedSequence hashes the pair so neighbouring (seed, index) pairs give independent streams.
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, dtype=np.uint64)
    return int(state[0])


class IndexedNoise:
    """N(0, I) rows, one per sample index, each from that sample's own generator.

    ``noise.initial(shape_or_state, device, dtype)`` draws x_T; calling ``noise(x)`` draws fresh noise
    shaped like the state ``x`` (a tensor or a tuple/dict of tensors): the ``noise_sampler`` samplers take.
    """

    def __init__(self, seed: int, indices: Sequence[int]):
        self.generators = [torch.Generator(device="cpu").manual_seed(sample_seed(seed, i)) for i in indices]

    def _rows(self, shape, device, dtype) -> torch.Tensor:
        rows = [torch.randn(tuple(shape), generator=g) for g in self.generators]
        return torch.stack(rows).to(device=device, dtype=dtype)

    def initial(self, shape, *, device=None, dtype=torch.float32) -> torch.Tensor:
        """x_T for one tensor of per-sample ``shape`` (no batch dimension)."""
        return self._rows(shape, device, dtype)

    def __call__(self, x):
        return tree_map(lambda leaf: self._rows(leaf.shape[1:], leaf.device, leaf.dtype), x)
