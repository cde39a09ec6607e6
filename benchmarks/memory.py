"""Training-step memory with and without gradient checkpointing, printed as JSON.

    python benchmarks/memory.py --model DiT-XL/2 --image-size 256 --batch-size 8 --method account
    python benchmarks/memory.py --model DiT-B/2 --image-size 256 --batch-size 8 --method measure

One training step as the official recipe runs it (hybrid loss, backward, AdamW, EMA), in fp32 or bf16
autocast, with ``model.gradient_checkpointing`` off (what the official ``train.py`` does) and on.

``--method measure`` runs each variant in a fresh process and reports its peak: ``torch.cuda
.max_memory_allocated`` on a GPU, peak RSS (``ru_maxrss``) on a CPU (which includes torch itself, ~0.3 GiB).
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

import torch

GIB = 2**30


def _inputs(config, batch: int, device):
    x = torch.randn(batch, config.in_channels, config.input_size, config.input_size, device=device)
    return x, torch.randint(0, 1000, (batch,), device=device), torch.randint(0, 1000, (batch,), device=device)


def measure(args) -> dict:
    """One real step in this process; returns its peak memory."""
    from ditkit.diffusion import create_diffusion
    from ditkit.models import create_model
    from ditkit.training.ema import make_ema, update_ema

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = create_model(args.model, input_size=args.image_size // 8, in_channels=4, num_classes=1000).to(device)
    model.gradient_checkpointing = args.checkpointing
    ema = make_ema(model)
    diffusion = create_diffusion(None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0)
    x, t, y = _inputs(model.config, args.batch_size, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        loss = diffusion.training_losses(lambda a, b: model(a, b, y).float(), x, t)["loss"].mean()
    loss.backward()
    optimizer.step()
    update_ema(list(ema.parameters()), list(model.parameters()), 0.9999)
    if device.type == "cuda":
        return {"peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 3), "what": "cuda max_memory_allocated"}
    return {"peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3), "what": "peak RSS"}


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
        # Parameters are counted below; views of one tensor are held once (at their base's size).
        if not isinstance(tensor, torch.nn.Parameter):
            base = tensor if tensor._base is None else tensor._base
            saved[id(base)] = base.numel() * base.element_size()
            keep.append(base)  # keep ids unique while counting
        return tensor

    diffusion = create_diffusion(None)
    x, t, y = _inputs(model.config, args.batch_size, "meta")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            model(x, t, y)  # the loss's own elementwise terms are per-image scalars-sized; not counted
    param_bytes = sum(p.numel() * 4 for p in model.parameters())
    states = {"weights": param_bytes, "grads": param_bytes, "adamw_moments": 2 * param_bytes, "ema": param_bytes}
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
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args)))
        return {}
    if args.method == "account" and args.precision != "fp32":
        p.error("--method account counts fp32 only (autocast does not act on the meta device); use --method measure")
    result = {"model": args.model, "image_size": args.image_size, "batch_size": args.batch_size,
              "precision": args.precision, "method": args.method}
    for name, flag in (("without_checkpointing", False), ("with_checkpointing", True)):
        if args.method == "account":
            args.checkpointing = flag
            result[name] = account(args)
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model, "--image-size",
                   str(args.image_size), "--batch-size", str(args.batch_size), "--precision", args.precision]
            cmd += (["--device", args.device] if args.device else []) + (["--checkpointing"] if flag else [])
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            result[name] = json.loads(out.strip().splitlines()[-1])
    result["ratio"] = round(result["with_checkpointing"]["peak_gib"] / result["without_checkpointing"]["peak_gib"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
