"""Noise schedules and timestep respacing (Improved DDPM conventions, as used by DiT)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DitkitError


def linear_betas(num_steps: int) -> np.ndarray:
    """The DDPM linear schedule 1e-4 -> 0.02 (rescaled so other step counts keep the same curve)."""
    scale = 1000 / num_steps
    return np.linspace(scale * 0.0001, scale * 0.02, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: alpha_bar(t) = cos²((t + s)/(1 + s) · π/2), s = 0.008."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return np.array(betas, dtype=np.float64)


def named_betas(name: str, num_steps: int) -> np.ndarray:
    if name == "linear":
        return linear_betas(num_steps)
    if name in ("cosine", "squaredcos_cap_v2"):
        return cosine_betas(num_steps)
    raise DitkitError(f"unknown noise schedule {name!r}; use 'linear' or 'cosine'")


def space_timesteps(num_steps: int, respacing: str | int | list[int] | None, *,
                    alphas_cumprod: np.ndarray | None = None) -> list[int]:
    """Which of the original timesteps a respaced process keeps, sorted ascending: THE respacing parser.

    ``None``/``""`` keeps all; ``"250"`` (or ``250``) takes 250 evenly strided steps; ``"10,15,20"``
    splits the range into sections with that many steps each; ``"ddim50"`` uses the integer stride
    that gives exactly 50 steps (as the DDIM paper does); ``"logsnr20"`` takes 20 steps uniform in
    log-SNR (needs the schedule's ``alphas_cumprod``).
    """
    if respacing is None or respacing == "":
        return list(range(num_steps))
    if isinstance(respacing, int):
        respacing = str(respacing)
    for prefix in ("ddim", "logsnr"):
        if isinstance(respacing, str) and respacing.startswith(prefix):
            try:
                desired = int(respacing[len(prefix):])
            except ValueError:
                raise DitkitError(f"bad respacing {respacing!r}; expected e.g. '{prefix}50'") from None
            if prefix == "logsnr":
                if alphas_cumprod is None:
                    raise DitkitError("log-SNR respacing needs the noise schedule")
                return logsnr_timesteps(alphas_cumprod, desired)
            return ddim_timesteps(num_steps, desired)
    try:
        counts = [int(x) for x in respacing.split(",")] if isinstance(respacing, str) else [int(x) for x in respacing]
    except ValueError:
        raise DitkitError(f"bad respacing {respacing!r}; expected e.g. '250', '10,20' or 'ddim50'") from None
    size_per, extra = divmod(num_steps, len(counts))
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if count < 1 or size < count:
            raise DitkitError(f"cannot take {count} steps from a section of {size} (respacing {respacing!r})")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        steps += [start + round(stride * j) for j in range(count)]
        start += size
    return sorted(set(steps))


def ddim_timesteps(num_steps: int, desired: int) -> list[int]:
    """The integer stride that takes exactly ``desired`` steps from ``num_steps`` (DDIM's spacing)."""
    for stride in range(1, num_steps):
        if len(range(0, num_steps, stride)) == desired:
            return list(range(0, num_steps, stride))
    raise DitkitError(f"cannot take exactly {desired} equally strided steps from {num_steps}")


def has_ddim_stride(num_steps: int, desired: int) -> bool:
    """Whether some integer stride takes exactly ``desired`` steps from ``num_steps``."""
    return any(len(range(0, num_steps, s)) == desired for s in range(1, num_steps))


def logsnr_timesteps(alphas_cumprod: np.ndarray, count: int) -> list[int]:
    """``count`` timesteps (ascending, distinct, including 0 and T-1) uniform in log-SNR.

    DPM-Solver takes its steps uniformly in lambda = log(alpha / sigma); on the discrete linear
    schedule lambda changes fastest near t = 0, so time-uniform steps waste most of the budget there.
    """
    num_steps = len(alphas_cumprod)
    if not 2 <= count <= num_steps:
        raise DitkitError(f"log-SNR spacing needs between 2 and {num_steps} steps, got {count}")
    lam = 0.5 * np.log(alphas_cumprod / (1.0 - alphas_cumprod))  # decreasing in t
    targets = np.linspace(lam[-1], lam[0], count)
    t = np.interp(targets, lam[::-1], np.arange(num_steps, dtype=np.float64)[::-1])
    t = np.round(t).astype(int)[::-1].copy()  # ascending, starts at 0
    for i in range(1, count):  # rounding can collide where lambda is flat: keep steps distinct
        t[i] = max(t[i], t[i - 1] + 1)
    if t[-1] > num_steps - 1:
        raise DitkitError(f"cannot place {count} distinct log-SNR steps in {num_steps}")
    return [int(v) for v in t]
