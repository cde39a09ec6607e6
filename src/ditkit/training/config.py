"""Every knob of a training run, in one dataclass (written to the run folder as resolved JSON).

Each field carries its command-line help in its metadata; ``ditkit train`` builds its flags from these
fields (``cli/train.py``), so a default is written once, here, and every flag lands in ``train_config.json``.
Metadata keys: ``help``; optional ``group`` (help section), ``flag`` (another flag name), ``choices``,
``metavar``, ``cli`` (False: not a flag), ``nested`` (a dataclass field: its sub-fields that are flags, with help).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..diffusion import DiffusionConfig
from ..diffusion.flow import PREDICTIONS, TIME_SAMPLINGS, check_flow_settings
from ..diffusion.gaussian import LOSS_WEIGHTINGS, PROCESSES
from ..errors import DitkitError
from ..knobs import knob
from ..precision import PRECISIONS
from .recipes import RECIPES, recipe_values

ADAMW_MOMENTS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    # -- data
    data: str = knob("mnist", "an image folder (class subfolders → conditional, flat → unconditional), a "
                     "latent-cache folder, or a bundled dataset: mnist, shapes", group="data")
    image_size: int | None = knob(None, "training resolution in pixels (default 32 for mnist/shapes, 256 for "
                                  "folders)", group="data")
    vae: str = knob("none", "'none' for pixel space, or a VAE: ema, mse, a hub id or a local AutoencoderKL "
                    "folder", group="data")
    latent_cache: str | None = knob(None, "encode the data once into DIR (with flipped copies) and train from "
                                    "the cache", group="data", metavar="DIR")
    flip: bool | None = knob(None, "random horizontal flips (default: off for mnist, on otherwise)", group="data")
    strict: bool = knob(False, "stop on unreadable images instead of skipping them", group="data")
    num_workers: int = knob(0, "DataLoader worker processes per rank", group="data")
    text_encoder: str | None = knob(None, "train a text-to-image model on captions with this frozen text encoder: "
                                    "minilm (offline), clip, t5, clip:HUB_ID or a local folder; mnist and shapes "
                                    "get captions, a folder needs metadata.jsonl or a .txt per image",
                                    group="data", metavar="minilm|clip|t5|PATH")
    text_cache: str | None = knob(None, "keep the captions' text embeddings in DIR (reused by later runs)",
                                  group="data", metavar="DIR")
    # -- model (--depth, --hidden-size, ... fill model_overrides; see cli/train.py)
    model: str = knob("DiT-S/2", "preset name (DiT-S/2 ... DiT-XL/8) or a model config.json; UniDiffuser: "
                      "caption-decoder (stage 1), then uvit-tiny|uvit-small|uvit-base (stage 2; "
                      "training/unidiffuser_run.py)", group="model")
    model_overrides: dict[str, Any] = knob({}, "DiTConfig fields that override the preset", cli=False)
    init_from: str | None = knob(None, "finetune from our checkpoint folder or an official .pt (a different "
                                 "class count resizes the label table); a uvit-* run: its trained caption-decoder "
                                 "checkpoint", group="model", metavar="CKPT")
    # -- recipe (the paper's defaults)
    recipe: str = knob("dit", "a named preset of the settings below: dit (the paper's, the defaults) or fast (flow "
                       "matching and a modern optimiser setting, measured in docs/recipe.md); flags given "
                       "explicitly override it", group="recipe", choices=tuple(RECIPES))
    max_steps: int = knob(1000, "optimizer steps to train to", group="recipe")
    global_batch_size: int = knob(256, "images per step over all processes, as in the paper", group="recipe")
    lr: float = knob(1e-4, "AdamW learning rate (constant after the warm-up)", group="recipe")
    warmup_steps: int = knob(0, "linear learning-rate warm-up over the first N steps (0: none, the paper's)",
                             group="recipe")
    dispersive_loss: float = knob(0.0, "weight of the dispersive loss on one block's states (Wang & He 2025; "
                                  "0.25-0.5 in the paper; 0: off)", group="recipe")
    dispersive_block: int | None = knob(None, "the block whose states the dispersive loss spreads (default: the "
                                        "middle one)", group="recipe")
    adam_beta2: float = knob(0.999, "AdamW's β2 (0.95: LightningDiT's, steadier at a high lr)", group="recipe")
    weight_decay: float = knob(0.0, "AdamW weight decay", group="recipe")
    ema_decay: float = knob(0.9999, "EMA decay", group="recipe")
    ema_warmup: bool = knob(False, "EMA warm-up min(decay, (1+t)/(10+t)) for short runs", group="recipe")
    max_grad_norm: float | None = knob(None, "clip gradients to this norm (default: off; the paper does not "
                                       "clip)", group="recipe")
    # the process, as stored in checkpoints; learn_sigma follows the model's output (resolved at start-up)
    diffusion: DiffusionConfig = knob(DiffusionConfig(), "the diffusion process", group="recipe", nested={
        "diffusion_steps": ("steps of the training diffusion process", None),
        "noise_schedule": ("beta schedule", ("linear", "cosine")),
        "loss_weighting": ("per-timestep weight of the ε-MSE: eps (the paper's L_simple), truncated-snr (x₀ "
                           "error weighted max(SNR, 1), Salimans & Ho 2022), p2 (1/(1+SNR), Choi et al. 2022) or min-snr "
                           "(min(SNR, 5)/SNR, Hang et al. 2023)",
                           tuple(LOSS_WEIGHTINGS)),
        "process": ("ddpm (the paper's) or flow (rectified flow, SiT; the flags below are its own)", PROCESSES),
        "prediction": ("flow: the network predicts the velocity or the clean image (x)", PREDICTIONS),
        "time_sampling": ("flow: training times uniform, or logit-normal (SD3)", TIME_SAMPLINGS),
        "time_mean": ("flow: the logit-normal's mean", None),
        "time_std": ("flow: the logit-normal's std", None),
        "time_shift": ("flow: shift s of the training times and sampling grid, t' = st/(1+(s-1)t); > 1 favours "
                       "noise", None),
        "direction_loss": ("flow: weight of the velocity-direction loss 1 − cos(v̂, v) (LightningDiT)", None)})
    uni_condition_share: float = knob(0.0, "UniDiffuser: share of samples trained as the modes sample them, one "
                                      "modality clean (t = 0) or absent (pure noise), the other noised (0: the "
                                      "paper's independent times only)", group="recipe")
    seed: int = knob(0, "global seed", group="recipe")
    # -- speed and memory
    precision: str = knob("auto", "auto (bf16 where the hardware does it natively: CUDA with bf16, or a CPU "
                          "with AVX512-BF16/AMX; fp32 elsewhere), fp32, bf16 autocast, or fp16 autocast with a "
                          "grad scaler (GPU)", group="speed and memory", choices=PRECISIONS)
    grad_checkpointing: bool = knob(False, "recompute blocks in backward to save memory", group="speed and memory")
    adamw_moments: str = knob("fp32", "AdamW's moments in fp32 (exact), or bf16: half the optimizer memory, the "
                              "second moment stochastically rounded", group="speed and memory",
                              choices=ADAMW_MOMENTS)
    optimizer_in_backward: bool = knob(False, "update each weight as soon as its gradient is complete and free "
                                       "the gradient: no whole-model gradients in memory, same AdamW result "
                                       "(one process; not with --max-grad-norm or fp16)", group="speed and memory")
    compile: bool = knob(False, "torch.compile the model", group="speed and memory")
    tf32: bool = knob(True, "disable TF32 matmuls on Ampere+ GPUs", group="speed and memory")
    fsdp: bool = knob(False, "shard the model with FSDP (under torchrun)", group="speed and memory")
    threads: int | None = knob(None, "torch CPU threads per process (default: torch's, split between local "
                               "processes under torchrun)", group="speed and memory")
    device: str | None = knob(None, "cpu or cuda (default: cuda if available)", group="speed and memory")
    # -- outputs
    out: str = knob("runs/train", "run folder", group="outputs")
    resume: str | None = knob(None, "continue from the newest checkpoint in --out, or from a checkpoint folder",
                              group="outputs", metavar="latest|PATH")
    ckpt_every: int = knob(1000, "checkpoint every N steps (and at the end)", group="outputs")
    keep_last: int = knob(3, "keep the newest K checkpoints (0 keeps all)", group="outputs")
    log_every: int = knob(10, "write a metrics.jsonl line every N steps", group="outputs")
    sample_every: int = knob(1000, "EMA sample grid every N steps (0: never)", group="outputs")
    sample_count: int = knob(16, "images per sample grid (fixed seed and classes)", group="outputs")
    sample_steps: int = knob(50, "DDIM steps for sample grids", group="outputs")
    sample_cfg: float = knob(4.0, "guidance scale for sample grids", group="outputs")
    fid_every: int = knob(0, "evaluate the EMA every N steps (0: never): FID (and class accuracy); text runs on "
                          "shapes: t2i-eval's attribute accuracy; UniDiffuser: uni-eval's t2i / i2t / joint; the "
                          "caption decoder: caption reconstruction", group="outputs")
    fid_samples: int = knob(1000, "samples (prompts, captions) per periodic evaluation", group="outputs")
    tensorboard: bool = knob(False, "also log to TensorBoard (needs tensorboard)", group="outputs")
    progress: bool = knob(True, "no progress bar", group="outputs")

    def __post_init__(self):
        if isinstance(self.diffusion, dict):
            self.diffusion = DiffusionConfig.from_dict(self.diffusion)
        problems = []
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("max_steps", "global_batch_size", "ckpt_every", "log_every", "sample_count",
                     "sample_steps", "fid_samples"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.diffusion.diffusion_steps < 1:
            problems.append(f"diffusion_steps must be at least 1, got {self.diffusion.diffusion_steps}")
        if not 0.0 <= self.dispersive_loss < float("inf"):
            problems.append(f"the dispersive-loss weight must be ≥ 0, got {self.dispersive_loss}")
        if not 0.0 <= self.uni_condition_share <= 1.0:
            problems.append(f"the UniDiffuser condition share must be in [0, 1], got {self.uni_condition_share}")
        if not 0.0 < self.adam_beta2 < 1.0:
            problems.append(f"AdamW's beta2 must be in (0, 1), got {self.adam_beta2}")
        for name in ("keep_last", "sample_every", "num_workers", "fid_every", "warmup_steps"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.adamw_moments not in ADAMW_MOMENTS:
            problems.append(f"adamw_moments must be fp32 or bf16, got {self.adamw_moments!r}")
        if not self.lr > 0:
            problems.append(f"the learning rate must be positive, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"the EMA decay must be in [0, 1), got {self.ema_decay}")
        if self.seed < 0:
            problems.append(f"the seed must be ≥ 0, got {self.seed}")
        if problems:
            raise DitkitError("invalid training settings: " + "; ".join(problems))
        if self.diffusion.process == "flow":  # the model decides learn_sigma later; a flow model has none
            check_flow_settings(replace(self.diffusion, learn_sigma=False))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_recipe(cls, recipe: str = "dit", **explicit) -> "TrainConfig":
        """The recipe's settings with ``explicit`` ones over them: ``TrainConfig.from_recipe("fast", data="mnist",
        lr=1e-3, diffusion={"time_shift": 2.0})``."""
        values = recipe_values(recipe, explicit)
        values["diffusion"] = DiffusionConfig.from_dict(values["diffusion"])
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        legacy = {k: data[k] for k in ("diffusion_steps", "noise_schedule") if k in data}  # before DiffusionConfig
        if legacy:
            data = {**data, "diffusion": {**legacy, **(data.get("diffusion") or {})}}
        return cls(**{k: v for k, v in data.items() if k in known})
