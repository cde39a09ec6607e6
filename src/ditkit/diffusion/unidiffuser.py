"""UniDiffuser's sampling modes: which modality is noised, which is held clean, and zero-cost guidance.

One network ``net(img, clip_img, text, t_img, t_text, data_type)`` predicts the noise of every modality, each
at its own timestep (0 = clean, the condition; 1000 = pure noise, "absent"). A mode is a denoiser over the
modalities it generates, as a dict state (keys ``img`` (B,C,H,W), ``clip_img`` (B,1,Dc), ``text`` (B,T,Dt)):

| mode  | state                  | conditional call              | unconditional call (guidance)                  |
|-------|------------------------|-------------------------------|------------------------------------------------|
| t2i   | img, clip_img          | net(z, c, y, t, 0)            | net(z, c, text_N, t, 1000)                     |
| i2t   | text                   | net(z0, c0, x, 0, t)          | net(z_N, clip_N, x, 1000, t)                   |
| joint | img, clip_img, text    | net(z, c, x, t, t)            | text: net(z_N, clip_N, x, 1000, t); image: net(z, c, text_N, t, 1000) |
| i     | img, clip_img          | net(z, c, text_N, t, 1000)    | —                                              |
| t     | text                   | net(z_N, clip_N, x, 1000, t)  | —                                              |

``*_N`` are fresh N(0, 1) draws at every evaluation; guided output = cond + scale·(cond − uncond) (``guidance.guide``
in the ``"unidiffuser"`` convention: scale 0 is no guidance). Random draws come from ``draw(shape, like)``: by
default a seeded generator, or a recorded list replayed in order (tests).

Both processes sample with the registry (``registry.py``): the official VP schedule (``vp_schedule.py``) with
its ``dpm-solver``, a flow process with any of the flow samplers.

The same table serves a U-ViT trained with flow matching (``flow.py``: x_t = (1 − t)x₀ + tε, the network's time
1000·t): there a modality at time 1000 is exactly a fresh noise draw too, the network predicts velocities, and
guidance combines them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch

from ..errors import DitkitError
from .gaussian import DiffusionConfig
from .guidance import guide
from .registry import DEFAULT_SAMPLERS, get_sampler, run_sampler
from .vp_schedule import DiscreteVPSchedule

__all__ = ["MODES", "SINGLE_MODES", "Shapes", "make_draw", "mode_denoiser", "unidiffuser_sample", "N_TIMESTEPS",
           "OFFICIAL_SAMPLER", "network_evaluations"]

N_TIMESTEPS = 1000  # the discrete process length: t = 1000 is pure noise
SINGLE_MODES = ("t2i", "i2t", "joint", "i", "t")
MODES = SINGLE_MODES + ("i2t2i", "t2i2t")
# What each mode generates (its solver state) and the conditions it needs.
GENERATES = {"t2i": ("img", "clip_img"), "i": ("img", "clip_img"), "i2t": ("text",), "t": ("text",),
             "joint": ("img", "clip_img", "text")}
NEEDS = {"t2i": ("text",), "i2t": ("img", "clip_img"), "joint": (), "i": (), "t": (),
         "i2t2i": ("img", "clip_img"), "t2i2t": ("text",)}

OFFICIAL_SAMPLER = "dpm-solver"  # the registry's singlestep DPM-Solver ('fast'), the VP process's only sampler

Draw = Callable[[tuple, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Shapes:
    """Per-sample shapes of the three modalities: latent (C,H,W), CLIP token (1,Dc), text (T,Dt)."""

    img: tuple
    clip_img: tuple
    text: tuple

    @classmethod
    def of(cls, net, latent_size: int | None = None) -> "Shapes":
        c = net.config
        side = latent_size or c.img_size
        return cls((c.in_chans, side, side), (1, c.clip_img_dim), (c.num_text_tokens, c.text_dim))


def make_draw(source: Draw | Iterable[torch.Tensor] | None = None, *, generator: torch.Generator | None = None) -> Draw:
    """``draw(shape, like)`` → a standard-normal tensor: ``source`` itself if callable, the next tensor of a
    recorded sequence (checked against the shape), or fresh draws from ``generator``."""
    if callable(source):
        return source
    if source is None:
        return lambda shape, like: torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)
    recorded = iter(source)

    def replay(shape, like):
        value = next(recorded, None)
        if value is None:
            raise DitkitError("the recorded random draws ran out before sampling finished.")
        if tuple(value.shape) != tuple(shape):
            raise DitkitError(f"recorded random draw of shape {tuple(value.shape)} where {tuple(shape)} is needed.")
        return value.to(like)

    return replay


@dataclass
class _Step:
    """What one evaluation of a mode sees: the network call, the draws, the conditions, guidance, times."""

    call: Callable  # call(img, clip_img, text, t_img, t_text) → (img, clip_img, text) noise predictions
    draw: Draw
    cond: dict
    scale: float
    shapes: Shapes
    t: torch.Tensor  # (B,) the generated modalities' timestep
    zero: torch.Tensor  # (B,) int32 zeros: a clean condition
    full: torch.Tensor  # (B,) 1000: a modality "absent" (pure noise)

    def guide(self, cond, uncond):
        """Guidance in UniDiffuser's convention: cond + scale·(cond − uncond), scale 0 = none."""
        return guide(cond, uncond, self.scale, convention="unidiffuser")


def _t2i(x, s: _Step) -> dict:
    z, c, y = x["img"], x["clip_img"], s.cond["text"]
    text_n = s.draw(y.shape, y)
    out, uncond = s.call(z, c, y, s.t, s.zero), s.call(z, c, text_n, s.t, s.full)
    return {"img": s.guide(out[0], uncond[0]), "clip_img": s.guide(out[1], uncond[1])}


def _i2t(x, s: _Step) -> dict:
    z0, c0 = s.cond["img"], s.cond["clip_img"]
    z_n, c_n = s.draw(z0.shape, z0), s.draw(c0.shape, c0)
    out, uncond = s.call(z0, c0, x["text"], s.zero, s.t), s.call(z_n, c_n, x["text"], s.full, s.t)
    return {"text": s.guide(out[2], uncond[2])}


def _joint(x, s: _Step) -> dict:
    z, c, tx = x["img"], x["clip_img"], x["text"]
    z_n, c_n, text_n = s.draw(z.shape, z), s.draw(c.shape, c), s.draw(tx.shape, tx)
    out = s.call(z, c, tx, s.t, s.t)
    text_uncond = s.call(z_n, c_n, tx, s.full, s.t)[2]  # the text without the image
    img_uncond = s.call(z, c, text_n, s.t, s.full)  # the image without the text
    return {"img": s.guide(out[0], img_uncond[0]), "clip_img": s.guide(out[1], img_uncond[1]),
            "text": s.guide(out[2], text_uncond)}


def _image_only(x, s: _Step) -> dict:
    z, c = x["img"], x["clip_img"]
    out = s.call(z, c, s.draw((z.shape[0], *s.shapes.text), z), s.t, s.full)
    return {"img": out[0], "clip_img": out[1]}


def _text_only(x, s: _Step) -> dict:
    tx = x["text"]
    z_n, c_n = s.draw((tx.shape[0], *s.shapes.img), tx), s.draw((tx.shape[0], *s.shapes.clip_img), tx)
    return {"text": s.call(z_n, c_n, tx, s.full, s.t)[2]}


# The single modes (the table above); two-stage modes chain them in ``unidiffuser_sample``.
_MODE_STEPS = {"t2i": _t2i, "i2t": _i2t, "joint": _joint, "i": _image_only, "t": _text_only}


def mode_denoiser(net: Callable, mode: str, *, cond: dict | None = None, scale: float = 7.0,
                  draw: Draw | None = None, data_type: int = 1, latent_size: int | None = None) -> Callable:
    """``denoise(x, timesteps)``: the mode's (guided) noise prediction for dict state ``x`` at timesteps (B,) in
    [0, 1000]; ``cond`` holds the clean conditions (``text`` for t2i, ``img`` and ``clip_img`` for i2t)."""
    if mode not in _MODE_STEPS:
        raise DitkitError(f"unknown UniDiffuser mode {mode!r}; expected one of {', '.join(SINGLE_MODES)}.")
    cond = cond or {}
    missing = [k for k in NEEDS[mode] if k not in cond]
    if missing:
        raise DitkitError(f"mode {mode!r} needs {' and '.join(missing)} as its condition.")
    draw, shapes, step = draw or make_draw(), Shapes.of(net, latent_size), _MODE_STEPS[mode]

    def call(img, clip_img, text, t_img, t_text):
        kind = torch.full((img.shape[0],), data_type, dtype=torch.int32, device=img.device)
        return net(img, clip_img, text, t_img, t_text, kind)

    def denoise(x: dict, t: torch.Tensor) -> dict:
        return step(x, _Step(call, draw, cond, scale, shapes, t, zero=torch.zeros_like(t, dtype=torch.int32),
                             full=torch.ones_like(t) * N_TIMESTEPS))

    return denoise


def _initial_state(mode: str, n: int, shapes: Shapes, draw: Draw, like: torch.Tensor) -> dict:
    """The official order: z, clip_img and text are all drawn for every mode, then the mode keeps its own."""
    init = {key: draw((n, *getattr(shapes, key)), like) for key in ("img", "clip_img", "text")}
    return {key: init[key] for key in GENERATES[mode]}


def network_evaluations(mode: str, steps: int, sampler: str = OFFICIAL_SAMPLER) -> int:
    """Sampler calls of one ``mode`` run (each one guided evaluation): Heun's K steps take 2K − 1."""
    calls = 2 * steps - 1 if sampler == "heun" else steps
    return calls * (2 if mode in ("i2t2i", "t2i2t") else 1)


@torch.no_grad()
def unidiffuser_sample(net: Callable, mode: str, n: int, *, cond: dict | None = None, steps: int = 50,
                       scale: float = 7.0, draw: Draw | None = None, schedule: DiscreteVPSchedule | None = None,
                       latent_size: int | None = None, device=None, callback: Callable | None = None,
                       process: DiffusionConfig | None = None, sampler: str | None = None) -> dict:
    """Sample ``n`` outputs of ``mode``; returns the generated modalities as a dict.

    ``process`` None is the official one (the VP schedule and its singlestep DPM-Solver, ``steps`` evaluations);
    a flow ``DiffusionConfig`` runs the registry's flow ``sampler`` (default Heun) on a grid of ``steps`` steps.
    ``callback(x=, t=, noise= | velocity=)`` sees every network evaluation (``_shown``; ``network_evaluations``
    counts them), where a sampler's own callback sees every step. Two-stage modes chain single ones: i2t2i
    (image variation) = i2t, then t2i from the generated text; t2i2t (text variation) = t2i, then i2t from the
    generated image and CLIP token.
    """
    if mode not in MODES:
        raise DitkitError(f"unknown UniDiffuser mode {mode!r}; expected one of {', '.join(MODES)}.")
    cond = dict(cond or {})
    missing = [k for k in NEEDS[mode] if k not in cond]
    if missing:
        raise DitkitError(f"mode {mode!r} needs {' and '.join(missing)} as its condition.")
    if mode in ("i2t2i", "t2i2t"):
        first, second = ("i2t", "t2i") if mode == "i2t2i" else ("t2i", "i2t")
        kw = dict(steps=steps, scale=scale, draw=draw, schedule=schedule, latent_size=latent_size, device=device,
                  callback=callback, process=process, sampler=sampler)
        middle = unidiffuser_sample(net, first, n, cond=cond, **kw)
        return {**middle, **unidiffuser_sample(net, second, n, cond=middle, **kw)}
    draw = draw or make_draw()
    if latent_size is None and "img" in cond:
        latent_size = cond["img"].shape[-1]
    shapes = Shapes.of(net, latent_size)
    like = torch.empty(0, device=device or next(iter(cond.values()), torch.empty(0)).device)
    denoise = mode_denoiser(net, mode, cond=cond, scale=scale, draw=draw, latent_size=latent_size)
    x_T = _initial_state(mode, n, shapes, draw, like)
    flow = process is not None and process.process == "flow"
    if not flow and sampler not in (None, OFFICIAL_SAMPLER):
        raise DitkitError(f"a UniDiffuser on the official VP schedule samples with {OFFICIAL_SAMPLER}, not {sampler!r}.")
    name = sampler or DEFAULT_SAMPLERS["flow" if flow else "vp"]
    if flow:
        solver_process = get_sampler(name).process(steps, process)
    else:
        solver_process = (schedule or DiscreteVPSchedule()).with_steps(steps)
    return run_sampler(name, _shown(denoise, callback, "velocity" if flow else "noise"), solver_process, x_T)


def _shown(denoise: Callable, callback: Callable | None, output: str) -> Callable:
    """``denoise`` showing every network evaluation to ``callback(x=, t=, noise= | velocity=)``: the state, the
    process's time t = network time / 1000 and the guided prediction (ε on the VP process, v on a flow one)."""
    if callback is None:
        return denoise

    def evaluate(x: dict, network_t: torch.Tensor) -> dict:
        prediction = denoise(x, network_t)
        callback(x=x, t=network_t / N_TIMESTEPS, **{output: prediction})
        return prediction

    return evaluate
