"""``ditkit train``: parse flags into a TrainConfig and call ``ditkit.training.train``."""

from __future__ import annotations

import argparse
import sys

_OVERRIDES = {  # small-model flags → DiTConfig fields, so a tiny DiT needs no config file
    "depth": int, "hidden_size": int, "num_heads": int, "patch_size": int, "mlp_ratio": float,
    "block": str, "class_dropout_prob": float,
}


def _bool_flag(p, name, help_text):
    p.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=help_text)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a DiT on an image folder or a bundled dataset (torchrun for several processes)",
        description="Train a DiT. One process: 'ditkit train ...'; several: 'torchrun --nproc_per_node=N -m ditkit "
                    "train ...' (DDP; gloo on CPU, NCCL on GPU). Writes checkpoints, metrics.jsonl, sample grids "
                    "and the resolved config to --out.")
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, help="an image folder (class subfolders → conditional, flat → "
                   "unconditional), a latent-cache folder, or a bundled dataset: mnist, shapes")
    g.add_argument("--image-size", type=int, default=None, help="training resolution in pixels "
                   "(default 32 for mnist/shapes, 256 for folders)")
    g.add_argument("--vae", default="none", help="'none' for pixel space (default), or a VAE: ema, mse, a hub id "
                   "or a local AutoencoderKL folder")
    g.add_argument("--latent-cache", default=None, metavar="DIR",
                   help="encode the data once into DIR (with flipped copies) and train from the cache")
    _bool_flag(g, "--flip", "random horizontal flips (default: off for mnist, on otherwise)")
    g.add_argument("--strict", action="store_true", help="stop on unreadable images instead of skipping them")
    g.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes per rank (default 0)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="DiT-S/2", help="preset name (DiT-S/2 ... DiT-XL/8) or a model config.json "
                   "(default DiT-S/2)")
    g.add_argument("--depth", type=int, help="override the number of transformer blocks")
    g.add_argument("--hidden-size", type=int, help="override the transformer width")
    g.add_argument("--num-heads", type=int, help="override the number of attention heads")
    g.add_argument("--patch-size", type=int, help="override the patch size")
    g.add_argument("--mlp-ratio", type=float, help="override the MLP width ratio")
    g.add_argument("--block", choices=("adaln-zero", "adaln", "cross-attention", "in-context"),
                   help="conditioning block design (default adaln-zero)")
    g.add_argument("--class-dropout-prob", type=float, help="label dropout for classifier-free guidance (default 0.1)")
    g.add_argument("--init-from", default=None, metavar="CKPT", help="finetune from our checkpoint folder or an "
                   "official .pt (a different class count resizes the label table)")
    g = p.add_argument_group("recipe")
    g.add_argument("--max-steps", type=int, default=1000, help="optimizer steps to train to (default 1000)")
    g.add_argument("--global-batch-size", type=int, default=256, help="images per step over all processes "
                   "(default 256, the paper's)")
    g.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate, constant (default 1e-4)")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    g.add_argument("--ema-decay", type=float, default=0.9999, help="EMA decay (default 0.9999)")
    g.add_argument("--ema-warmup", action="store_true", help="EMA warm-up min(decay, (1+t)/(10+t)) for short runs")
    g.add_argument("--max-grad-norm", type=float, default=None, help="clip gradients to this norm (default: off)")
    g.add_argument("--seed", type=int, default=0, help="global seed (default 0)")
    g = p.add_argument_group("speed and memory")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32, bf16 autocast (CPU and GPU) or fp16 autocast with a grad scaler (GPU)")
    g.add_argument("--grad-checkpointing", action="store_true", help="recompute blocks in backward to save memory")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--no-tf32", dest="tf32", action="store_false", help="disable TF32 matmuls on Ampere+ GPUs")
    g.add_argument("--fsdp", action="store_true", help="shard the model with FSDP (under torchrun)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads per process "
                   "(default: torch's, split between local processes under torchrun)")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    g = p.add_argument_group("outputs")
    g.add_argument("--out", default="runs/train", help="run folder (default runs/train)")
    g.add_argument("--resume", default=None, metavar="latest|PATH", help="continue from the newest checkpoint "
                   "in --out, or from a checkpoint folder")
    g.add_argument("--ckpt-every", type=int, default=1000, help="checkpoint every N steps (and at the end)")
    g.add_argument("--keep-last", type=int, default=3, help="keep the newest K checkpoints (0 keeps all)")
    g.add_argument("--log-every", type=int, default=10, help="write a metrics.jsonl line every N steps")
    g.add_argument("--sample-every", type=int, default=1000, help="EMA sample grid every N steps (0: never)")
    g.add_argument("--sample-count", type=int, default=16, help="images per sample grid (fixed seed and classes)")
    g.add_argument("--sample-steps", type=int, default=50, help="DDIM steps for sample grids")
    g.add_argument("--sample-cfg", type=float, default=4.0, help="guidance scale for sample grids")
    g.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard (needs tensorboard)")
    g.add_argument("--fid-every", type=int, default=0, help="compute FID of the EMA every N steps (0: never)")
    g.add_argument("--fid-samples", type=int, default=1000, help="samples per periodic FID")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import DitkitError
    from ..training import TrainConfig, train

    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    config = TrainConfig(
        data=args.data, image_size=args.image_size, vae=args.vae, latent_cache=args.latent_cache, flip=args.flip,
        strict=args.strict, num_workers=args.num_workers, model=args.model, model_overrides=overrides,
        init_from=args.init_from, max_steps=args.max_steps, global_batch_size=args.global_batch_size, lr=args.lr,
        weight_decay=args.weight_decay, ema_decay=args.ema_decay, ema_warmup=args.ema_warmup,
        max_grad_norm=args.max_grad_norm, seed=args.seed, precision=args.precision,
        grad_checkpointing=args.grad_checkpointing, compile=args.compile, tf32=args.tf32, fsdp=args.fsdp,
        threads=args.threads, device=args.device, out=args.out, resume=args.resume, ckpt_every=args.ckpt_every,
        keep_last=args.keep_last, log_every=args.log_every, sample_every=args.sample_every,
        sample_count=args.sample_count, sample_steps=args.sample_steps, sample_cfg=args.sample_cfg,
        tensorboard=args.tensorboard, progress=args.progress)
    eval_fn = None
    if args.fid_every:
        try:
            from ..evaluation import make_training_eval_fn
        except ImportError as exc:
            raise DitkitError("--fid-every needs ditkit.evaluation.make_training_eval_fn, which is not available") from exc
        eval_fn = make_training_eval_fn(args.data, args.fid_samples, image_size=args.image_size, codec=args.vae,
                                        seed=args.seed, progress=False)
    summary = train(config, eval_fn=eval_fn, eval_every=args.fid_every, command_line=list(sys.argv))
    if summary["checkpoint"]:
        print(f"trained to step {summary['step']} (loss {summary['loss']:.4f}); checkpoint: {summary['checkpoint']}")
    return 0
