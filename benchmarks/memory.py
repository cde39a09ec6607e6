"""Training-step memory with and without gradient checkpointing, printed as JSON.

    python benchmarks/memory.py --model DiT-XL/2 --image-size 256 --batch-size 8 --method account
    python benchmarks/memory.py --model DiT-B/2 --image-size 256 --batch-size 8 --method measure

Training steps as the official recipe runs them (hybrid loss, backward, AdamW, EMA), in fp32 or bf16
autocast, four ways: as the official ``train.py`` (no checkpointing); with ``--grad-checkpointing``; plus
``--optimizer-in-backward`` (each weight updated and its gradient freed as soon as the gradient is complete,
so no step holds the whole model's gradients; same AdamW arithmetic); plus ``--adamw-moments bf16`` (AdamW's
moments stored in bf16, the second stochastically rounded).

``--method measure`` runs each variant in a fresh process and reports its peak: ``torch.cuda
.max_memory_allocated`` on a GPU, peak RSS (``ru_maxrss``) on a CPU, which includes torch itself (reported
as ``baseline_gib``: the RSS after the imports). The CPU workers run with ``MALLOC_MMAP_THRESHOLD_`` fixed at
128 KiB so that glibc maps every large tensor and returns it to the system when freed; with its default
adaptive threshold freed tensors stay in the heap and the peak RSS of the same step varied by 0.3 GiB from
run to run at DiT-S/2 (1.84 and 2.11 GiB without checkpointing).
``--method account`` runs nothing real: the model runs on the meta device and every tensor autograd saves
for backward is counted (activations), added to the exact bytes of weights, gradients, AdamW's two moments
and the EMA copy. It is what a step must hold at the end of the forward pass, the usual peak; allocator
slack and kernel workspaces are not in it. Use it where a real step does not fit (DiT-XL/2 batch 8 on a
small CPU machine would need ~20 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from unittest import mock

import torch

GIB = 2**30


def _inputs(config, batch: int, device):
    x = torch.randn(batch, config.in_channels, config.input_size, config.input_size, device=device)
    return x, torch.randint(0, 1000, (batch,), device=device), torch.randint(0, 1000, (batch,), device=device)


def measure(args) -> dict:
    """Two real training steps in this process; returns the peak memory."""
    from ditkit.diffusion import create_diffusion
    from ditkit.models import create_model
    from ditkit.training.ema import make_ema, update_ema
    from ditkit.training.bf16_moments import AdamWBf16Moments
    from ditkit.training.optimizer_in_backward import OptimizerInBackward

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = create_model(args.model, input_size=args.image_size // 8, in_channels=4, num_classes=1000).to(device)
    model.gradient_checkpointing = args.checkpointing
    ema = make_ema(model)
    diffusion = create_diffusion(None)
    optimizer = (AdamWBf16Moments(model.parameters(), lr=1e-4) if args.bf16_moments
                 else torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0))
    in_backward = OptimizerInBackward(optimizer) if args.optimizer_in_backward else None
    x, t, y = _inputs(model.config, args.batch_size, device)
    for _ in range(2):  # the second step's forward runs while the first step's gradients are still held
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = diffusion.training_losses(lambda a, b: model(a, b, y).float(), x, t)["loss"].mean()
        if in_backward is not None:
            in_backward.backward(loss, want_norm=False)
        else:
            optimizer.zero_grad(set_to_none=True)  # where the official loop and ditkit's step free them
            loss.backward()
            optimizer.step()
        update_ema(list(ema.parameters()), list(model.parameters()), 0.9999)
    if device.type == "cuda":
        return {"peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 3), "what": "cuda max_memory_allocated"}
    return {"peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3),
            "baseline_gib": round(baseline, 3), "what": "peak RSS"}


def account(args) -> dict:
    """Saved-for-backward bytes on the meta device + weights, grads, AdamW moments and EMA."""
    from ditkit.diffusion import create_diffusion
    from ditkit.models import create_model

    with torch.device("meta"):
        model = create_model(args.model, input_size=args.image_size // 8, in_channels=4, num_classes=1000)
    model.gradient_checkpointing = args.checkpointing
    model.train()
    saved: dict[int, int] = {}
    keep: list[torch.Tensor] = []

    def pack(tensor):
        # Weights (and views of them, such as the transposes linear layers save) are counted below; views
        # of one tensor are held once, at their base's size.
        base = tensor if tensor._base is None else tensor._base
        if not isinstance(base, torch.nn.Parameter):
            saved[id(base)] = base.numel() * base.element_size()
            keep.append(base)  # keep ids unique while counting
        return tensor

    def flash_attention(q, k, v, *args, **kwargs):
        # On the meta device SDPA takes the math path and would count the (L × L) attention matrix; on
        # a real CPU or GPU fp32 SDPA runs a flash kernel that keeps q, k, v, the output and the logsumexp.
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0]

    diffusion = create_diffusion(None)
    x, t, y = _inputs(model.config, args.batch_size, "meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", flash_attention):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            model(x, t, y)  # the loss's own elementwise terms are per-image scalars-sized; not counted
    param_bytes = sum(p.numel() * 4 for p in model.parameters())
    # gradients in the optimizer: one tensor's at a time (the largest bounds it), else all of them
    grad_bytes = max(p.numel() * 4 for p in model.parameters()) if args.optimizer_in_backward else param_bytes
    moment_bytes = 2 * param_bytes // (2 if args.bf16_moments else 1)
    states = {"weights": param_bytes, "grads": grad_bytes, "adamw_moments": moment_bytes, "ema": param_bytes}
    activations = sum(saved.values())
    if args.checkpointing:  # backward recomputes one block at a time: add one block's share
        args.checkpointing = False
        activations += account(args)["activations_gib"] * GIB / model.config.depth
        args.checkpointing = True
    return {"peak_gib": round((sum(states.values()) + activations) / GIB, 3), "activations_gib": round(activations / GIB, 3),
            "states_gib": round(sum(states.values()) / GIB, 3), "what": "accounted (meta device)"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="DiT-XL/2")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--method", choices=("account", "measure"), default="account")
    p.add_argument("--device", default=None)
    p.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)  # worker mode
    p.add_argument("--optimizer-in-backward", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bf16-moments", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return {}
    if args.method == "account" and args.precision != "fp32":
        p.error("--method account counts fp32 only (autocast does not act on the meta device); use --method measure")
    result = {"model": args.model, "image_size": args.image_size, "batch_size": args.batch_size,
              "precision": args.precision, "method": args.method}
    variants = {"without_checkpointing": (), "with_checkpointing": ("checkpointing",),
                "with_checkpointing_and_optimizer_in_backward": ("checkpointing", "optimizer_in_backward"),
                "with_checkpointing_optimizer_in_backward_and_bf16_moments":
                    ("checkpointing", "optimizer_in_backward", "bf16_moments")}
    for name, levers in variants.items():
        if args.method == "account":
            for lever in ("checkpointing", "optimizer_in_backward", "bf16_moments"):
                setattr(args, lever, lever in levers)
            result[name] = account(args)
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model, "--image-size",
                   str(args.image_size), "--batch-size", str(args.batch_size), "--precision", args.precision]
            cmd += (["--device", args.device] if args.device else []) + ["--" + lv.replace("_", "-") for lv in levers]
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            result[name] = json.loads(out.strip().splitlines()[-1])
    base = result["without_checkpointing"]["peak_gib"]
    result["ratios"] = {name: round(result[name]["peak_gib"] / base, 3) for name in list(variants)[1:]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
