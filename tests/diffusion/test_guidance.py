"""One guidance combination, two conventions: DiT's uncond + s·Δ (s = 1: none) and UniDiffuser's cond + s·Δ
(s = 0: none) are the same line, UniDiffuser's s being DiT's 1 + s."""

import pytest
import torch

from ditkit.diffusion.guidance import NO_GUIDANCE, cfg_denoiser, guide


def test_the_two_conventions_are_one_combination():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    for convention, none in NO_GUIDANCE.items():
        torch.testing.assert_close(guide(cond, uncond, none, convention=convention), cond)
    for s in (0.5, 3.0, 7.0):
        torch.testing.assert_close(guide(cond, uncond, s, convention="unidiffuser"), guide(cond, uncond, 1 + s))
    assert torch.equal(guide(cond, uncond, 4.0), uncond + 4.0 * (cond - uncond))  # the reference arithmetic
    assert torch.equal(guide(cond, uncond, 7.0, convention="unidiffuser"), cond + 7.0 * (cond - uncond))
    with pytest.raises(ValueError, match="unknown guidance convention"):
        guide(cond, uncond, 1.0, convention="sd")


def test_cfg_denoiser_guides_with_the_dit_convention():
    def model(x, t, y):
        return x + y.float().view(-1, 1, 1, 1)  # the "prediction" moves with the label; null class 10

    x, t, y = torch.zeros(2, 4, 2, 2), torch.zeros(2, dtype=torch.long), torch.tensor([1, 2])
    out = cfg_denoiser(model, y, 3.0, null_class=10)(x, t)
    torch.testing.assert_close(out, guide(model(x, t, y), model(x, t, torch.full_like(y, 10)), 3.0))
    assert torch.equal(cfg_denoiser(model, y, 1.0, null_class=10)(x, t), model(x, t, y))  # scale 1: no guidance
