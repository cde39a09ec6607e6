"""Samplers on a state of several tensors (UniDiffuser's image latent + CLIP token + text latent).

A two-modality toy with a closed-form denoiser: each modality is Gaussian data with its own mean and
spread, so the joint ODE solution is known and each modality can also be sampled on its own.
"""

import numpy as np
import pytest
import torch

from ditkit.diffusion import SAMPLERS, DiffusionConfig, IndexedNoise, sample
from ditkit.diffusion.state import fixed_modalities, tree_map

FIXED = DiffusionConfig(learn_sigma=False)
ALPHA_BAR = torch.from_numpy(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)))
STATS = {"image": (0.7, 0.3), "text": (-0.4, 0.8)}


def exact_eps(x, t, mu, std):
    a = ALPHA_BAR[t].reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return torch.sqrt(1 - a) * (x - torch.sqrt(a) * mu) / (a * std**2 + 1 - a)


def joint_denoiser(calls=None):
    def denoise(x, t):
        if calls is not None:
            calls.append({k: v.shape[0] for k, v in x.items()})
        return {key: exact_eps(x[key], t, *STATS[key]) for key in x}

    return denoise


def exact_velocity(x, network_time, mu, std):
    """The flow process's exact v(x_t, t) for data N(mu, std²): (x_t − E[x_0 | x_t]) / t."""
    t = (network_time / 1000).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    x0 = mu + (1 - t) * std**2 / ((1 - t) ** 2 * std**2 + t**2) * (x - (1 - t) * mu)
    return (x - x0) / t


def joint_velocity(x, t):
    return {key: exact_velocity(x[key], t, *STATS[key]) for key in x}


def state(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 2, 4, 4, generator=g, dtype=torch.float64),
            "text": torch.randn(n, 5, 3, generator=g, dtype=torch.float64)}


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "heun"])
def test_a_two_tensor_state_equals_each_modality_sampled_alone(sampler):
    x = state()
    calls = []
    joint = sample(joint_denoiser(calls), x, sampler=sampler, steps=8, config=FIXED)
    assert set(joint) == {"image", "text"} and joint["text"].shape == (300, 5, 3)
    assert all(c == {"image": 300, "text": 300} for c in calls)  # one network call covers both modalities
    for key, (mu, std) in STATS.items():
        alone = sample(lambda v, t, mu=mu, std=std: exact_eps(v, t, mu, std), x[key], sampler=sampler, steps=8,
                       config=FIXED)
        torch.testing.assert_close(joint[key], alone, rtol=0, atol=1e-12)
        assert abs(joint[key].mean().item() - mu) < 0.05


def test_tuple_states_and_ancestral_noise_per_modality():
    x = state(2000)
    pair = (x["image"], x["text"])
    out = sample(lambda v, t: tuple(exact_eps(leaf, t, *STATS[k]) for leaf, k in zip(v, STATS)), pair,
                 sampler="ddpm", steps=250, config=FIXED, generator=torch.Generator().manual_seed(1))
    assert isinstance(out, tuple) and len(out) == 2
    for leaf, (mu, std) in zip(out, STATS.values()):
        assert abs(leaf.mean().item() - mu) < 0.02 and abs(leaf.std().item() / std - 1) < 0.05


def test_per_index_noise_for_a_multi_tensor_state():
    """Sample i depends only on (seed, i): also when the state has several tensors."""
    shapes = {"image": (2, 4, 4), "text": (5, 3)}

    def draw(indices):
        noise = IndexedNoise(seed=7, indices=indices)
        x_T = {k: noise.initial(s, dtype=torch.float64) for k, s in shapes.items()}
        return sample(joint_denoiser(), x_T, sampler="ddpm", steps=6, config=FIXED, noise_sampler=noise)

    full, part = draw(list(range(6))), draw([4, 1])
    for key in shapes:
        torch.testing.assert_close(part[key], full[key][[4, 1]], rtol=0, atol=1e-12)


def test_a_fixed_modality_keeps_its_own_timestep():
    """UniDiffuser's text-to-image: the text is held clean (t = 0) while the image is sampled."""
    text = torch.full((3, 5, 3), 0.25, dtype=torch.float64)
    seen = []

    def joint(x, t):
        seen.append((int(t["image"][0]), int(t["text"][0]), torch.equal(x["text"], text)))
        return {key: exact_eps(x[key], t[key], *STATS[key]) for key in x}

    image = sample(fixed_modalities(joint, {"text": text}, {"text": 0}), {"image": state(3)["image"]},
                   sampler="ddim", steps=4, config=FIXED)
    assert set(image) == {"image"}
    assert [s[0] for s in seen] == [750, 500, 250, 0] and all(s[1] == 0 and s[2] for s in seen)


def test_every_registered_sampler_accepts_a_dict_state():
    flow = DiffusionConfig(process="flow", learn_sigma=False)
    for name, spec in SAMPLERS.items():
        for config in (FIXED, flow):  # each process's form of the sampler, where it has one
            if spec.target_for(config.process) is None:
                continue
            denoiser = joint_velocity if config.process == "flow" else joint_denoiser()
            out = sample(denoiser, state(4), sampler=name, steps=3, config=config,
                         generator=torch.Generator().manual_seed(0))
            assert tree_map(lambda v: v.shape, out) == {"image": (4, 2, 4, 4), "text": (4, 5, 3)}
