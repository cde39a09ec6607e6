"""Training throughput of the ditkit engine: images/s and peak memory, printed as JSON.

    python benchmarks/train_throughput.py --model DiT-S/2 --image-size 256 --batch-size 8 --precision fp32

It runs the real training loop (``ditkit.training.train``) on a latent cache of random latents shaped
like SD-VAE latents of ``--image-size`` images (C=4, side/8), so the figure is the DiT step itself —
forward, hybrid loss, backward, AdamW, EMA — as in the paper's setting of training on latents. The
first ``--warmup`` steps are not timed (nor is torch.compile's warm-up, which happens in them); checkpoint
writing is never timed.

MFU (model FLOPs utilisation) = 3 × forward FLOPs per image (forward + backward, as usual) × images/s,
over the machine's matmul peak measured just before in the run's dtype (``matmul_peak.py``) with the same
threads; ``--peak-seconds 0`` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from matmul_peak import measure_peak  # noqa: E402


def make_random_latent_cache(folder: str, count: int, channels: int, size: int, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(count, channels, size, size, generator=g)
    save_file({"latents": latents, "latents_flipped": latents.flip(-1).contiguous(),
               "labels": torch.randint(0, 1000, (count,), generator=g)},
              os.path.join(folder, "shard-00000.safetensors"))
    meta = {"format": "ditkit-latent-cache", "codec": {"type": "pixel", "channels": 3}, "dataset": "random",
            "image_size": size * 8, "num_classes": 1000, "class_names": [str(i) for i in range(1000)],
            "seed": seed, "shard_sizes": [count]}
    with open(os.path.join(folder, "cache.json"), "w") as f:
        json.dump(meta, f)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="DiT-S/2", help="preset name (default DiT-S/2)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels; latents are side/8 (default 256)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="fp32", help="default fp32")
    p.add_argument("--steps", type=int, default=12, help="timed steps (default 12)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute blocks in backward")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--attention", choices=("auto", "fused"), default="auto",
                   help="auto: ditkit's choice (plain ops for bf16 on CPU); fused: always torch's SDPA kernel")
    p.add_argument("--peak-seconds", type=float, default=1.0, help="matmul-peak timing for MFU (0: skip)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import ditkit.models.dit as dit_module

    dit_module.ATTENTION_MATH_ON_CPU_BF16 = args.attention == "auto"

    from ditkit.training import TrainConfig, train
    from ditkit.version import __version__

    latent = args.image_size // 8
    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        os.makedirs(cache)
        make_random_latent_cache(cache, max(64, 2 * args.batch_size), 4, latent)
        config = TrainConfig(data=cache, model=args.model, max_steps=total, global_batch_size=args.batch_size,
                             precision=args.precision, grad_checkpointing=args.grad_checkpointing,
                             compile=args.compile, threads=args.threads, device=args.device, out=os.path.join(tmp, "run"),
                             ckpt_every=10**9, keep_last=1, log_every=1, sample_every=0, progress=False)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        cpu0 = time.process_time()
        train(config)
        cpu_seconds = time.process_time() - cpu0
        with open(os.path.join(tmp, "run", "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f][args.warmup:]
    seconds = sum(args.batch_size / r["img_per_s"] for r in records)
    result = {
        "model": args.model, "image_size": args.image_size, "latent_shape": [4, latent, latent],
        "batch_size": args.batch_size, "precision": args.precision, "grad_checkpointing": args.grad_checkpointing,
        "compile": args.compile, "timed_steps": len(records),
        "images_per_s": round(args.batch_size * len(records) / seconds, 3),
        "seconds_per_step": round(seconds / len(records), 4),
        "process_cpu_seconds": round(cpu_seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "ditkit": __version__,
        "python": platform.python_version(),
    }
    result.update(_mfu(args, result["images_per_s"]))
    print(json.dumps(result))
    return result


def _mfu(args, images_per_s: float) -> dict:
    """Training FLOP/s (3 × forward per image) and its share of the measured matmul peak."""
    from ditkit.models.flops import count_flops
    from ditkit.precision import resolve_precision

    forward = 2 * count_flops(args.model, input_size=args.image_size // 8, in_channels=4, num_classes=1000)
    achieved = 3 * forward * images_per_s
    out = {"train_gflops_per_image": round(3 * forward / 1e9, 2), "achieved_gflops": round(achieved / 1e9, 1)}
    if args.peak_seconds > 0:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = "bf16" if resolve_precision(args.precision, device) in ("bf16", "fp16") else "fp32"
        peak = measure_peak(dtype, seconds=args.peak_seconds, device=device)
        out.update({"peak_dtype": dtype, "peak_gflops": round(peak / 1e9, 1), "mfu": round(achieved / peak, 3)})
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
