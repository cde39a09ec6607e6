"""Flow matching with the linear (rectified-flow) interpolant: the math, no network and no sampling loop.

    x_t = (1 − t) x_0 + t ε,   t ∈ [0, 1],   velocity v = dx_t/dt = ε − x_0      (Liu et al. 2022; SiT, Ma et al. 2024)

so α(t) = 1 − t, σ(t) = t and λ(t) = log(α/σ) — the same (α, σ) bookkeeping as the Gaussian process, which is
what lets one sampler family (``flow_samplers.py``) and the guidance wrapper serve both. The network sees the
time as ``1000·t`` (the DiT timestep embedder's scale), and predicts the velocity (``prediction="velocity"``,
SiT) or the clean image (``"x"``; the loss is still taken on the velocity it implies, as JiT). Training times
are drawn uniformly or logit-normally (SD3, Esser et al. 2024, eq. 19) and then shifted towards noise,
t' = s·t / (1 + (s − 1)·t) (SD3 eq. 23); the sampling grid gets the same shift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DitkitError

PREDICTIONS = ("velocity", "x")
TIME_SAMPLINGS = ("uniform", "logit-normal")
NETWORK_TIME_SCALE = 1000.0  # the network's timestep input is 1000·t, DDPM's range
X_PREDICTION_MIN_T = 0.05  # v = (x_t − x̂_0)/t: clamp t so the implied velocity stays bounded near the data


def check_flow_settings(config) -> None:
    """One DitkitError naming every bad flow setting of a ``DiffusionConfig``."""
    problems = []
    if config.prediction not in PREDICTIONS:
        problems.append(f"prediction must be one of {', '.join(PREDICTIONS)}, got {config.prediction!r}")
    if config.time_sampling not in TIME_SAMPLINGS:
        problems.append(f"time sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {config.time_sampling!r}")
    if not (config.time_shift > 0 and config.time_shift < float("inf")):
        problems.append(f"the time shift must be a positive number, got {config.time_shift}")
    if not (config.time_std > 0 and config.time_std < float("inf")):
        problems.append(f"the logit-normal std must be a positive number, got {config.time_std}")
    if not abs(config.time_mean) < float("inf"):
        problems.append(f"the logit-normal mean must be a finite number, got {config.time_mean}")
    if not 0 <= config.direction_loss < float("inf"):
        problems.append(f"the direction-loss weight must be ≥ 0, got {config.direction_loss}")
    if config.learn_sigma:
        problems.append("a flow model predicts no variance (learn_sigma must be off)")
    if problems:
        raise DitkitError("invalid flow-matching settings: " + "; ".join(problems))


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """t' = s·t / (1 + (s − 1)·t): s > 1 spends more of the time (training and sampling) at high noise."""
    return t if shift == 1.0 else shift * t / (1 + (shift - 1) * t)


class FlowMatching:
    """The linear-interpolant flow process; ``steps`` sets the sampling grid (None: training only)."""

    family = "flow"

    def __init__(self, config, steps: int | None = None):
        check_flow_settings(config)
        self.config = config
        self.prediction, self.shift = config.prediction, float(config.time_shift)
        self.num_timesteps = int(steps) if steps is not None else 0
        if steps is not None and self.num_timesteps < 1:
            raise DitkitError(f"steps must be at least 1, got {steps}")
        # the grid t_K = 1 > ... > t_0 = 0, uniform before the shift; sampler step i goes t_{i+1} → t_i
        grid = torch.linspace(0.0, 1.0, self.num_timesteps + 1, dtype=torch.float64)
        self.grid = shift_time(grid, self.shift)

    # -- (α, σ, λ) of the interpolant, and the network's view of time
    @staticmethod
    def alpha_sigma_at(t: float) -> tuple[float, float]:
        """(α(t), σ(t)) = (1 − t, t): x_t = α x_0 + σ ε."""
        return 1.0 - float(t), float(t)

    def time(self, i: int) -> float:
        """t_i of the sampling grid (float64 as a Python float)."""
        return float(self.grid[i])

    def network_time(self, t: torch.Tensor) -> torch.Tensor:
        return t * NETWORK_TIME_SCALE

    # -- conversions of a model output at (x_t, t); t broadcastable against x_t
    def velocity(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        if self.prediction == "velocity":
            return output
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device).clamp(min=X_PREDICTION_MIN_T)
        return (x_t - output) / t  # v = (x_t − x̂_0) / t

    def denoised(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """x̂_0 = x_t − t·v̂ (velocity), or the output itself (x-prediction)."""
        return output if self.prediction == "x" else x_t - t * output

    def noise(self, output: torch.Tensor, x_t: torch.Tensor, t) -> torch.Tensor:
        """ε̂ = x_t + (1 − t)·v̂."""
        return x_t + (1 - t) * self.velocity(output, x_t, t)

    # -- training
    def sample_training_t(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training times in (0, 1): uniform or logit-normal, then shifted."""
        if self.config.time_sampling == "logit-normal":
            u = torch.randn(n, device=device, generator=generator)
            t = torch.sigmoid(self.config.time_mean + self.config.time_std * u)
        else:
            t = torch.rand(n, device=device, generator=generator)
        return shift_time(t, self.shift)

    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, *([1] * (x_start.ndim - 1)))
        return (1 - t) * x_start + t * noise

    def training_losses(self, model_fn, x_start: torch.Tensor, t: torch.Tensor,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per sample: ‖v̂ − v‖² (+ the direction loss 1 − cos(v̂, v) when weighted; LightningDiT).

        ``model_fn(x_t, network_time)`` returns the raw network output."""
        noise = torch.randn_like(x_start) if noise is None else noise
        x_t = self.q_sample(x_start, t, noise)
        output = model_fn(x_t, self.network_time(t))
        v_hat = self.velocity(output, x_t, t.reshape(-1, *([1] * (x_start.ndim - 1))))
        target = noise - x_start
        terms = {"mse": (v_hat - target).pow(2).flatten(1).mean(1)}
        loss = terms["mse"]
        if self.config.direction_loss > 0:
            terms["direction"] = 1 - F.cosine_similarity(v_hat.flatten(1), target.flatten(1), dim=1)
            loss = loss + self.config.direction_loss * terms["direction"]
        terms["loss"] = loss
        return terms
