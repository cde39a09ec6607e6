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

``--processes N`` runs the same training as N data-parallel processes on this machine (torchrun, gloo on CPU,
the global batch split over them, ``--threads`` each, default cores/N), the engine's multi-process path: on
a small CPU, processes with fewer threads each keep the cores busier than one process with all of them.
images/s is then the global figure and peak_rss_mib the largest single process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
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
    p.add_argument("--processes", type=int, default=1, help="data-parallel processes under torchrun (default 1)")
    p.add_argument("--workdir", help=argparse.SUPPRESS)  # set by the launcher for its torchrun children
    args = p.parse_args(argv)
    if args.batch_size % args.processes:
        p.error(f"--batch-size {args.batch_size} does not split over --processes {args.processes}")
    if args.workdir:  # a torchrun child: train, the launcher reads the metrics
        _train(args, args.workdir)
        return {}
    if args.threads:
        torch.set_num_threads(args.threads)

    from ditkit.version import __version__

    latent = args.image_size // 8
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "cache"))
        make_random_latent_cache(os.path.join(tmp, "cache"), max(64, 2 * args.batch_size), 4, latent)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        cpu0 = time.process_time()
        if args.processes == 1:
            _train(args, tmp)
            peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        else:
            _launch(args, argv, tmp)
            peak_rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        cpu_seconds = time.process_time() - cpu0 + _children_cpu_seconds()
        with open(os.path.join(tmp, "run", "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f][args.warmup:]
    seconds = sum(args.batch_size / r["img_per_s"] for r in records)
    result = {
        "model": args.model, "image_size": args.image_size, "latent_shape": [4, latent, latent],
        "batch_size": args.batch_size, "precision": args.precision, "grad_checkpointing": args.grad_checkpointing,
        "compile": args.compile, "processes": args.processes, "timed_steps": len(records),
        "images_per_s": round(args.batch_size * len(records) / seconds, 3),
        "seconds_per_step": round(seconds / len(records), 4),
        "process_cpu_seconds": round(cpu_seconds, 1),
        "peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)",
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "ditkit": __version__,
        "python": platform.python_version(),
    }
    result.update(_mfu(args, result["images_per_s"]))
    print(json.dumps(result))
    return result


def _train(args, workdir: str) -> None:
    """The real training loop on the random latent cache in ``workdir`` (under torchrun: this rank's part)."""
    import ditkit.models.dit as dit_module
    from ditkit.training import TrainConfig, train

    dit_module.ATTENTION_MATH_ON_CPU_BF16 = args.attention == "auto"
    config = TrainConfig(data=os.path.join(workdir, "cache"), model=args.model, max_steps=args.warmup + args.steps,
                         global_batch_size=args.batch_size, precision=args.precision,
                         grad_checkpointing=args.grad_checkpointing, compile=args.compile, threads=args.threads,
                         device=args.device, out=os.path.join(workdir, "run"), ckpt_every=10**9, keep_last=1,
                         log_every=1, sample_every=0, progress=False)
    train(config)


def _launch(args, argv, workdir: str) -> None:
    """This script again as ``--processes`` torchrun processes on this machine, each training its share."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.processes}",
               os.path.abspath(__file__), *argv, "--workdir", workdir]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
