"""A measured and dropped lever: int8 linears in training (SwitchBack), against the bf16 step. Prints JSON.

    python benchmarks/int8_linear_lever.py [--steps 10] [--threads 1] [--model DiT-S/2]

SwitchBack (Wortsman et al. 2023, Alg. 1) runs two of a linear layer's three matmuls in int8, y = x Wᵀ + b:
forward and input gradient quantised (x and ∂y per row, W per tensor, int32 accumulation), the weight
gradient ∂yᵀx in bf16. Where the CPU has AVX512-VNNI, oneDNN's int8 GEMM runs at twice its bf16 rate. This
script builds the same DiT three times (plain bf16 autocast; int8 in every block linear; int8 in the MLP
only), compiles each per block as ``--compile`` does, and alternates their steps (forward, ε-MSE, backward,
fused AdamW) in one process, so that all three see the same machine. CPU seconds per step: min and median.
docs/performance.md quotes its figures; ditkit does not ship the layer (the gain was ~8% at best, MLP only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from ditkit.models import create_model


def _quantize_rows(x):
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp_min(1e-30) / 127.0
    return (x.float() / scale).round_().to(torch.int8), scale


def _quantize_tensor(w):
    scale = w.abs().amax().float().clamp_min(1e-30) / 127.0
    return (w.float() / scale).round_().to(torch.int8), scale


class _SwitchBack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):                                   # x (M, K), weight (N, K)
        x_q, x_scale = _quantize_rows(x)
        w_q, w_scale = _quantize_tensor(weight)
        y = torch._int_mm(x_q, w_q.t()).float() * (x_scale * w_scale) + bias.float()   # (M, N)
        ctx.save_for_backward(x, w_q, w_scale)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_y):
        x, w_q, w_scale = ctx.saved_tensors
        g_q, g_scale = _quantize_rows(grad_y.contiguous())
        grad_x = (torch._int_mm(g_q, w_q).float() * (g_scale * w_scale)).to(x.dtype)   # (M, K), int8
        grad_w = (grad_y.t().to(x.dtype) @ x).float()                                   # (N, K), bf16
        return grad_x, grad_w, grad_y.float().sum(0)


class Int8Linear(nn.Linear):
    def forward(self, x):
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        x2 = x.reshape(-1, x.shape[-1]).to(dtype).contiguous()
        with torch.autocast("cpu", enabled=False):
            y = _SwitchBack.apply(x2, self.weight, self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)


VARIANTS = {"bf16": (), "int8_all": ("qkv", "proj", "fc1", "fc2"), "int8_mlp": ("fc1", "fc2")}


def build(model_name: str, layers: tuple[str, ...]):
    torch.manual_seed(0)
    model = create_model(model_name, input_size=32, in_channels=4, num_classes=1000)
    with torch.no_grad():  # adaLN-Zero starts at zero: give every layer a gradient to compute
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    for block in model.blocks:
        for name, module in block.named_modules():
            if type(module) is nn.Linear and name.split(".")[-1] in layers:
                module.__class__ = Int8Linear  # same parameters, same keys
    model.train().compile_blocks()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="DiT-S/2")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first (compilation)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 4, 32, 32, generator=g)
    t = torch.randint(0, 1000, (args.batch_size,), generator=g)
    y = torch.randint(0, 1000, (args.batch_size,), generator=g)
    variants = {name: build(args.model, layers) for name, layers in VARIANTS.items()}

    def step(model, optimizer):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, t, y)
        (out.float()[:, :4] - x).pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for pair in variants.values():
        for _ in range(args.warmup):
            step(*pair)
    seconds = {name: [] for name in variants}
    for _ in range(args.steps):  # alternated, so machine noise falls on every variant alike
        for name, pair in variants.items():
            t0 = time.process_time()
            step(*pair)
            seconds[name].append(time.process_time() - t0)
    result = {"model": args.model, "batch_size": args.batch_size, "threads": args.threads, "torch": torch.__version__,
              "cpu_seconds_per_step": {k: {"min": round(min(v), 3), "median": round(statistics.median(v), 3)}
                                       for k, v in seconds.items()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
