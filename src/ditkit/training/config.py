"""Every knob of a training run, in one dataclass (written to the run folder as resolved JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import DitkitError

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    # -- data
    data: str = "mnist"                 # image folder, latent cache, "mnist" or "shapes"
    image_size: int | None = None       # pixels; None = 32 for mnist/shapes, 256 for folders
    vae: str = "none"                   # "none" = pixel space; else a VAE id/path (see ditkit.codecs)
    latent_cache: str | None = None     # folder: encode the data once there (if missing) and train from it
    flip: bool | None = None            # None = the dataset's default (off for digits)
    strict: bool = False                # corrupt images are an error instead of being skipped
    num_workers: int = 0
    # -- model
    model: str = "DiT-S/2"              # preset name or a config.json (ours or a DiT config dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. depth, hidden_size, num_heads
    init_from: str | None = None        # finetune: our checkpoint folder or an official .pt
    # -- recipe (the paper's defaults)
    max_steps: int = 1000
    global_batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.9999
    ema_warmup: bool = False            # decay_t = min(decay, (1+t)/(10+t)): for short runs
    max_grad_norm: float | None = None  # the paper does not clip
    diffusion_steps: int = 1000
    noise_schedule: str = "linear"
    seed: int = 0
    # -- speed and memory
    precision: str = "fp32"
    grad_checkpointing: bool = False
    compile: bool = False
    tf32: bool = True
    fsdp: bool = False
    threads: int | None = None          # torch CPU threads per process (None: cores / local ranks)
    device: str | None = None           # None: cuda if available else cpu
    # -- outputs
    out: str = "runs/train"
    resume: str | None = None           # "latest" or a checkpoint folder
    ckpt_every: int = 1000
    keep_last: int = 3                  # 0 keeps every checkpoint
    log_every: int = 10
    sample_every: int = 1000            # 0 = never
    sample_count: int = 16
    sample_steps: int = 50              # DDIM steps for the progress grids
    sample_cfg: float = 4.0
    tensorboard: bool = False
    progress: bool = True

    def __post_init__(self):
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("max_steps", "global_batch_size", "ckpt_every", "log_every", "sample_count",
                     "sample_steps", "diffusion_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("keep_last", "sample_every", "num_workers"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"the learning rate must be positive, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"the EMA decay must be in [0, 1), got {self.ema_decay}")
        if self.seed < 0:
            problems.append(f"the seed must be ≥ 0, got {self.seed}")
        if problems:
            raise DitkitError("invalid training settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
