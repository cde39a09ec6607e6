"""The Gaussian diffusion process of DDPM / Improved DDPM: the math, no network and no sampling loop.

Model outputs enter as tensors: ``p_mean_variance(model_output, x_t, t)``. ``t`` are indices into
*this* process (0 .. num_timesteps-1); for a respaced process ``timestep_map[t]`` is the original
timestep the network was trained on. Coefficients are computed in float64 and rounded once when
gathered, exactly as the reference does, so results match it to float32 precision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import DitkitError
from .schedules import named_betas, space_timesteps


PROCESSES = ("ddpm", "flow")
FLOW_FIELDS = ("prediction", "time_sampling", "time_mean", "time_std", "time_shift", "direction_loss")


@dataclass
class DiffusionConfig:
    """How to build the process; stored in checkpoints beside the model config.

    ``process``: ``ddpm`` (this module, the paper's) or ``flow`` (``flow.py``: rectified flow; the fields from
    ``prediction`` on are its own, and a DDPM config's stored dict omits them)."""

    diffusion_steps: int = 1000
    noise_schedule: str = "linear"
    learn_sigma: bool = True  # learned-range variance; else fixed (large, as the reference)
    loss_weighting: str = "eps"  # a name in LOSS_WEIGHTINGS; "eps" is the paper's L_simple
    process: str = "ddpm"
    prediction: str = "velocity"  # flow: what the network predicts (velocity or x)
    time_sampling: str = "uniform"  # flow: training times, uniform or logit-normal
    time_mean: float = 0.0  # flow: the logit-normal's mean
    time_std: float = 1.0  # flow: the logit-normal's std
    time_shift: float = 1.0  # flow: t' = s t / (1 + (s - 1) t), training and sampling
    direction_loss: float = 0.0  # flow: weight of 1 - cos(v_hat, v) beside the velocity MSE

    def __post_init__(self):
        if self.process not in PROCESSES:
            raise DitkitError(f"unknown process {self.process!r} (known: {', '.join(PROCESSES)})")

    def to_dict(self):
        d = asdict(self)
        if self.process == "ddpm":  # a DDPM record stays as it always was
            for name in ("process", *FLOW_FIELDS):
                d.pop(name)
        return d

    @classmethod
    def from_dict(cls, d: dict | None, **overrides) -> "DiffusionConfig":
        """Settings as stored (unknown keys ignored) over the defaults, then ``overrides``."""
        known = {k: v for k, v in (d or {}).items() if k in cls.__dataclass_fields__}
        return cls(**{**known, **overrides})


def create_process(config: DiffusionConfig, steps: str | int | None = None):
    """The process ``config`` describes: a (respaced) ``GaussianDiffusion``, or ``FlowMatching`` with a grid
    of ``steps`` steps (None: for training)."""
    if config.process == "flow":
        from .flow import FlowMatching

        return FlowMatching(config, None if steps is None else int(steps))
    return create_diffusion(steps, noise_schedule=config.noise_schedule, learn_sigma=config.learn_sigma,
                            diffusion_steps=config.diffusion_steps, loss_weighting=config.loss_weighting)


# Per-timestep weights of the ε-MSE, as functions of SNR(t) = ᾱ_t / (1 − ᾱ_t). In x₀ terms the ε-MSE weights
# the x₀ error by SNR, so the noisy steps where a layout is decided weigh ~1e-3 of the clean ones.
LOSS_WEIGHTINGS = {
    "eps": lambda snr: np.ones_like(snr),  # L_simple (Ho et al. 2020), the DiT paper's
    # x₀ weight max(SNR, 1) ("truncated SNR", Salimans & Ho 2022): no lower than the clean steps' in x₀ terms
    "truncated-snr": lambda snr: np.maximum(1.0, 1.0 / snr),
    # P2, k = 1, γ = 1 (Choi et al. 2022): down-weights the clean-up steps (SNR > 1) against the content steps
    "p2": lambda snr: 1.0 / (1.0 + snr),
    # Min-SNR-γ, γ = 5 (Hang et al. 2023): the x₀ weight min(SNR, 5), i.e. min(SNR, 5)/SNR on the ε-MSE: the
    # clean steps stop dominating, which their paper found converges 3.4x faster
    "min-snr": lambda snr: np.minimum(snr, 5.0) / snr,
}


# --------------------------------------------------------------------------------------------
# Densities used by the variational bound
# --------------------------------------------------------------------------------------------


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of data in [-1, 1] quantized to 256 bins under a Gaussian (DDPM's decoder L0)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=list(range(1, x.ndim)))


# --------------------------------------------------------------------------------------------
# The process
# --------------------------------------------------------------------------------------------


class GaussianDiffusion:
    """q(x_t | x_0), its posterior, the model's p(x_{t-1} | x_t), and the hybrid training loss."""

    family = "ddpm"

    def __init__(self, betas: np.ndarray, *, learn_sigma: bool = True, timestep_map: list[int] | None = None,
                 loss_weighting: str = "eps"):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas <= 1)).all():
            raise DitkitError("betas must be a 1-D array in (0, 1]")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise DitkitError(f"unknown loss weighting {loss_weighting!r} (known: {', '.join(LOSS_WEIGHTINGS)})")
        self.loss_weighting = loss_weighting
        self.learn_sigma = learn_sigma
        self.num_timesteps = len(betas)
        self.timestep_map = torch.tensor(
            timestep_map if timestep_map is not None else list(range(self.num_timesteps)), dtype=torch.long
        )

        alphas = 1.0 - betas
        ac = np.cumprod(alphas)
        ac_prev = np.append(1.0, ac[:-1])
        posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
        # log of the posterior variance, with the t=0 entry (which is 0) replaced by the t=1 value
        posterior_log_variance_clipped = np.log(np.append(posterior_variance[1], posterior_variance[1:])) \
            if len(betas) > 1 else np.log(np.maximum(posterior_variance, 1e-20))

        self._f64 = {
            "betas": betas,
            "log_betas": np.log(betas),
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
            "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": posterior_log_variance_clipped,
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
            # fixed-variance models use the larger of the two DDPM choices (beta_t), as the reference
            "fixed_large_variance": np.append(posterior_variance[1], betas[1:]) if len(betas) > 1 else betas,
            # lambda = log(alpha / sigma), half the log-SNR: the time variable of DPM-Solver
            "half_log_snr": np.log(np.sqrt(ac)) - np.log(np.sqrt(1.0 - ac)),
            "mse_weight": LOSS_WEIGHTINGS[loss_weighting](ac / (1.0 - ac)),
        }
        self._tables = {k: torch.from_numpy(v) for k, v in self._f64.items()}

    # -- helpers
    @property
    def alphas_cumprod(self) -> np.ndarray:
        return self._f64["alphas_cumprod"]

    def _gather(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Coefficient table[t] (float64 -> float32, like the reference), broadcast to like's shape."""
        values = self._tables[name].to(t.device)[t].float()
        return values.reshape(-1, *([1] * (like.ndim - 1)))

    def original_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Indices of this process -> the timesteps the network was trained with."""
        return self.timestep_map.to(t.device)[t]

    # -- what samplers read (public, so that no sampler touches the tables)
    def alpha_bar_at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t for indices ``t`` (float32, shaped to broadcast against ``like``)."""
        return self._gather("alphas_cumprod", t, like)

    def alpha_bar_prev_at(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_{t-1} (1 at t = 0) for indices ``t``, shaped like :meth:`alpha_bar_at`."""
        return self._gather("alphas_cumprod_prev", t, like)

    def alpha_sigma(self, i: int) -> tuple[float, float]:
        """(α_i, σ_i) = (√ᾱ_i, √(1 − ᾱ_i)) of step ``i`` in float64: x_i = α_i x_0 + σ_i ε."""
        return float(self._f64["sqrt_alphas_cumprod"][i]), float(self._f64["sqrt_one_minus_alphas_cumprod"][i])

    def half_log_snr(self, i: int) -> float:
        """λ_i = log(α_i / σ_i), half the log signal-to-noise ratio of step ``i`` (float64)."""
        return float(self._f64["half_log_snr"][i])

    def edm_sigma(self, i: int) -> float:
        """σ_i / α_i = √((1 − ᾱ_i) / ᾱ_i): the noise level of x / α_i, EDM's (Karras et al.) σ."""
        alpha, sigma = self.alpha_sigma(i)
        return sigma / alpha

    def eps(self, model_output: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """The ε prediction inside a raw model output (dropping learned-variance channels)."""
        return self.split_output(model_output, x_t.shape[1])[0]

    # -- forward process
    def q_sample(self, x_start: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        noise = torch.randn_like(x_start) if noise is None else noise
        return self._gather("sqrt_alphas_cumprod", t, x_start) * x_start + \
            self._gather("sqrt_one_minus_alphas_cumprod", t, x_start) * noise

    def q_posterior_mean_variance(self, x_start, x_t, t):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = self._gather("posterior_mean_coef1", t, x_t) * x_start + self._gather("posterior_mean_coef2", t, x_t) * x_t
        return mean, self._gather("posterior_variance", t, x_t), self._gather("posterior_log_variance_clipped", t, x_t)

    # -- conversions between eps and x_0
    def predict_xstart_from_eps(self, x_t, t, eps):
        return self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t - self._gather("sqrt_recipm1_alphas_cumprod", t, x_t) * eps

    def predict_eps_from_xstart(self, x_t, t, pred_xstart):
        return (self._gather("sqrt_recip_alphas_cumprod", t, x_t) * x_t - pred_xstart) / \
            self._gather("sqrt_recipm1_alphas_cumprod", t, x_t)

    # -- reverse process
    def split_output(self, model_output: torch.Tensor, channels: int):
        """Raw network output -> (eps, v or None)."""
        if self.learn_sigma:
            if model_output.shape[1] != 2 * channels:
                raise DitkitError(
                    f"a learned-variance process needs {2 * channels} output channels, got {model_output.shape[1]}"
                )
            return model_output[:, :channels], model_output[:, channels:]
        return model_output[:, :channels], None

    def p_mean_variance(self, model_output, x_t, t, *, clip_denoised: bool = False, denoised_fn=None):
        """p(x_{t-1} | x_t) from a model output: dict(mean, variance, log_variance, pred_xstart, eps)."""
        eps, v = self.split_output(model_output, x_t.shape[1])
        if v is not None:
            # learned range: interpolate log-variance between beta~_t (v = -1) and beta_t (v = 1)
            min_log = self._gather("posterior_log_variance_clipped", t, x_t)
            max_log = self._gather("log_betas", t, x_t)
            frac = (v + 1) / 2
            log_variance = frac * max_log + (1 - frac) * min_log
            variance = torch.exp(log_variance)
        else:
            variance = self._gather("fixed_large_variance", t, x_t).expand_as(x_t)
            log_variance = torch.log(variance)
        pred_xstart = self.predict_xstart_from_eps(x_t, t, eps)
        if denoised_fn is not None:
            pred_xstart = denoised_fn(pred_xstart)
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return {"mean": mean, "variance": variance, "log_variance": log_variance, "pred_xstart": pred_xstart,
                "eps": eps}

    # -- training objective
    def sample_training_t(self, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training timesteps: indices drawn uniformly (the paper's)."""
        return torch.randint(0, self.num_timesteps, (n,), device=device, generator=generator)

    def vb_terms_bpd(self, model_output, x_start, x_t, t, *, clip_denoised: bool = False):
        """One term of the variational bound in bits/dim: KL(q || p) for t > 0, decoder NLL at t = 0."""
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x_start, x_t, t)
        out = self.p_mean_variance(model_output, x_t, t, clip_denoised=clip_denoised)
        kl = mean_flat(normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"])) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x_start, out["mean"], 0.5 * out["log_variance"])
        nll = mean_flat(nll) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, model_fn: Callable, x_start: torch.Tensor, t: torch.Tensor,
                        noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Improved-DDPM hybrid loss per sample: w(t)·mse(eps, eps_hat) + vb (vb trains only the variance).
        ``mse`` is reported unweighted; w(t) = 1 unless the process was built with another ``loss_weighting``.

        ``model_fn(x_t, original_t)`` returns the raw network output.
        """
        noise = torch.randn_like(x_start) if noise is None else noise
        x_t = self.q_sample(x_start, t, noise)
        output = model_fn(x_t, self.original_timesteps(t))
        eps, v = self.split_output(output, x_start.shape[1])
        terms = {"mse": mean_flat((noise - eps) ** 2)}
        if v is not None:
            # the mean is detached so the VLB term only shapes the variance (Nichol & Dhariwal)
            frozen = torch.cat([eps.detach(), v], dim=1)
            terms["vb"] = self.vb_terms_bpd(frozen, x_start, x_t, t)
        else:
            terms["vb"] = torch.zeros_like(terms["mse"])
        mse = terms["mse"] if self.loss_weighting == "eps" else terms["mse"] * self._gather("mse_weight", t, terms["mse"])
        terms["loss"] = mse + terms["vb"]
        return terms


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


def create_diffusion(timestep_respacing: str | int | None = None, *, noise_schedule: str = "linear",
                     learn_sigma: bool = True, diffusion_steps: int = 1000, loss_weighting: str = "eps") -> GaussianDiffusion:
    """The DiT process, optionally respaced: ``create_diffusion("250")``, ``"ddim10"``, ``"logsnr20"``."""
    base_betas = named_betas(noise_schedule, diffusion_steps)
    keep = space_timesteps(diffusion_steps, timestep_respacing, alphas_cumprod=np.cumprod(1.0 - base_betas))
    if len(keep) == diffusion_steps:
        return GaussianDiffusion(base_betas, learn_sigma=learn_sigma, loss_weighting=loss_weighting)
    # Respacing keeps alpha_bar at the chosen steps and recomputes betas between them.
    alphas_cumprod = np.cumprod(1.0 - base_betas)
    kept = set(keep)
    last, betas, timestep_map = 1.0, [], []
    for i, ac in enumerate(alphas_cumprod):
        if i in kept:
            betas.append(1 - ac / last)
            last = ac
            timestep_map.append(i)
    return GaussianDiffusion(np.array(betas), learn_sigma=learn_sigma, timestep_map=timestep_map,
                             loss_weighting=loss_weighting)
