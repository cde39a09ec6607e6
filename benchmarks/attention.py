"""Attention backends for DiT's self-attention shapes, forward + backward, printed as JSON.

    python benchmarks/attention.py [--batch 8 --heads 6 --tokens 256 --head-dim 64] [--threads 1]

Compares torch's fused ``scaled_dot_product_attention`` (flash kernel on CPU), its math backend, and
the plain three-op form that ``ditkit.models.dit.attention`` uses for bf16 on CPU. Both wall time and
process CPU time are reported (best of ``--reps``): on a shared machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ditkit.models.dit import attention


def _plain(q, k, v):
    q = q * q.shape[-1] ** -0.5
    return (q @ k.transpose(-2, -1)).softmax(dim=-1) @ v


def _fused(backend):
    def run(q, k, v):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v)
    return run


def time_fwd_bwd(fn, shape, dtype, reps: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    q, k, v = [torch.randn(*shape, generator=g).to(dtype).requires_grad_() for _ in range(3)]
    for _ in range(2):
        fn(q, k, v).sum().backward()
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(q, k, v).sum().backward()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall) * 1e3, min(cpu) * 1e3


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--reps", type=int, default=6)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = (args.batch, args.heads, args.tokens, args.head_dim)
    backends = {"sdpa_flash": _fused(SDPBackend.FLASH_ATTENTION), "sdpa_math": _fused(SDPBackend.MATH),
                "plain_ops": _plain, "ditkit": attention}
    result = {"shape": list(shape), "threads": torch.get_num_threads(), "torch": torch.__version__}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        for name, fn in backends.items():
            wall, cpu = time_fwd_bwd(fn, shape, dtype, args.reps)
            result[f"{dtype_name}_{name}_ms"] = {"wall": round(wall, 1), "cpu": round(cpu, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
