"""The machine's measured matmul peak (FLOP/s) in fp32 and bf16, printed as JSON.

    python benchmarks/matmul_peak.py [--size 2048] [--seconds 2] [--threads N] [--device cpu]

Model FLOPs utilisation (MFU) needs a denominator: rather than a datasheet figure (clock, FMA units and
turbo vary between machines and VMs), we time large square matmuls, best of a few timed windows, with
the same torch threads the training benchmark uses. ``train_throughput.py`` imports ``measure_peak``.
The figure is the best this torch build reaches on a friendly shape, so MFU near 1.0 is the ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_peak(dtype: str = "fp32", size: int = 2048, seconds: float = 2.0, device: str = "cpu") -> float:
    """Best FLOP/s of (size × size) @ (size × size) matmuls in ``dtype`` over windows of ~seconds/4."""
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dev, DTYPES[dtype])
    b = torch.randn(size, size, generator=g).to(dev, DTYPES[dtype])
    flops_per = 2.0 * size**3
    torch.mm(a, b)  # warm-up: oneDNN/cuBLAS pick and cache their kernels here
    _sync(dev)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        reps, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            reps += 1
            _sync(dev)
            elapsed = time.perf_counter() - t0
            if elapsed > seconds / 4:
                break
        best = max(best, reps * flops_per / elapsed)
    return best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048, help="square matrix side (default 2048)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing budget per dtype (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"device": args.device, "threads": torch.get_num_threads(), "size": args.size, "torch": torch.__version__,
              "cpu_count": os.cpu_count()}
    for name in DTYPES:
        result[f"peak_{name}_gflops"] = round(measure_peak(name, args.size, args.seconds, args.device) / 1e9, 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
