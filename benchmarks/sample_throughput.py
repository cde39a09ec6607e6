"""Sampling speed: ``ditkit sample`` against an official-style sampling loop at equal NFE, printed as JSON.

    python benchmarks/sample_throughput.py --model DiT-S/2 --num-samples 8 --steps 50 --cfg-scale 4

Both draw the same number of guided samples from the same DiT (random weights: speed does not depend on
them) on 32×32×4 latents, with DDPM at ``--steps`` respaced steps, so both make ``--steps`` network calls on
a doubled (conditional + null) batch. The VAE decode is left out of both (``--vae none``): it is the same
decoder either way and needs the hub.

* official-style: the loop the official ``sample.py`` runs, written here against ditkit's diffusion:
  fp32, ``torch.no_grad``, the guided batch [x, x] with labels [y, null], guidance on the first three
  channels, ``p_mean_variance`` then an ancestral step. Timed in-process after the model is built.
* ditkit in-process: ``ditkit.pipelines.generate`` on the same model object, timed like the loop (the
  like-for-like figure: both without start-up).
* ditkit: the ``ditkit sample`` command as a user types it, timed as a whole process (start-up, checkpoint
  loading and writing the latents included), so its figure is the pessimistic one.

``--precision`` is ditkit's (``fp32``, ``bf16`` or ``auto``); the official-style loop is fp32, as the official
``sample.py``.

Wall seconds and CPU seconds are both reported; with ``--threads 1`` on a shared machine, CPU is the fair one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch


def official_style_loop(model, steps: int, labels: torch.Tensor, cfg_scale: float, seed: int) -> torch.Tensor:
    from ditkit.diffusion import create_diffusion

    diffusion = create_diffusion(str(steps))
    g = torch.Generator().manual_seed(seed)
    n, c, s = labels.shape[0], model.config.in_channels, model.config.input_size
    x = torch.randn(n, c, s, s, generator=g)
    y = torch.cat([labels, torch.full_like(labels, model.config.num_classes)])
    with torch.no_grad():
        for i in reversed(range(diffusion.num_timesteps)):
            t = torch.full((n,), i, dtype=torch.long)
            out = model(torch.cat([x, x]), diffusion.timestep_map[t].repeat(2), y)
            eps, rest = out[:, :3], out[:, 3:]
            cond, uncond = eps.chunk(2)
            eps = uncond + cfg_scale * (cond - uncond)
            guided = torch.cat([eps, rest[:n]], dim=1)
            p = diffusion.p_mean_variance(guided, x, t)
            noise = torch.randn(x.shape, generator=g) if i > 0 else torch.zeros_like(x)
            x = p["mean"] + torch.exp(0.5 * p["log_variance"]) * noise
    return x


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (``ditkit sample`` runs as a child)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _clock(run) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), _cpu_seconds()
    run()
    return time.perf_counter() - t0, _cpu_seconds() - c0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="DiT-S/2")
    p.add_argument("--latent-size", type=int, default=32)
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--steps", type=int, default=50, help="DDPM steps = network calls (default 50)")
    p.add_argument("--cfg-scale", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32", help="ditkit's (default fp32)")
    p.add_argument("--repeats", type=int, default=2, help="time each this many times, keep the best (default 2)")
    p.add_argument("--extra", default="", help="more flags for ditkit sample, e.g. '--batch-size 8'")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ditkit.checkpoints import save_pretrained
    from ditkit.models import create_model

    torch.manual_seed(0)
    model = create_model(args.model, input_size=args.latent_size, in_channels=4, num_classes=1000).eval()
    for param in model.parameters():  # the zero init would make every output zero; any weights time the same
        torch.nn.init.normal_(param, std=0.02)
    labels = torch.arange(args.num_samples) % 1000
    result = {"model": args.model, "latent_size": args.latent_size, "num_samples": args.num_samples,
              "steps": args.steps, "nfe": args.steps, "cfg_scale": args.cfg_scale, "threads": torch.get_num_threads(),
              "repeats": args.repeats}
    from ditkit.pipelines import generate

    def timed(key, run):  # best of --repeats: the first call also pays oneDNN's one-off kernel set-up
        best = min(_clock(run) for _ in range(args.repeats))
        result[f"{key}_s"], result[f"{key}_cpu_s"] = round(best[0], 2), round(best[1], 2)

    timed("official_style", lambda: official_style_loop(model, args.steps, labels, args.cfg_scale, seed=0))
    timed("ditkit_in_process", lambda: generate(model, labels=labels.tolist(), sampler="ddpm", steps=args.steps,
                                                cfg_scale=args.cfg_scale, precision=args.precision, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "model")
        save_pretrained(model, ckpt, codec={"type": "pixel", "channels": 4})
        cmd = [sys.executable, "-m", "ditkit", "sample", "--checkpoint", ckpt, "--vae", "none",
               "--classes", ",".join(str(int(v)) for v in labels), "--cfg-scale", str(args.cfg_scale),
               "--sampler", "ddpm", "--steps", str(args.steps), "--precision", args.precision] + args.extra.split()
        env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
        outs = iter(range(args.repeats))  # a fresh folder each time: an existing one would be resumed, not redrawn
        timed("ditkit_sample", lambda: subprocess.run([*cmd, "--out", os.path.join(tmp, f"out-{next(outs)}")],
                                                      check=True, capture_output=True, text=True, env=env))
        result["ditkit_command"] = " ".join(cmd[1:]).replace(tmp, "TMP")
    result["precision"] = args.precision
    result["speedup_in_process_wall"] = round(result["official_style_s"] / result["ditkit_in_process_s"], 3)
    result["speedup_in_process_cpu"] = round(result["official_style_cpu_s"] / result["ditkit_in_process_cpu_s"], 3)
    result["speedup_wall"] = round(result["official_style_s"] / result["ditkit_sample_s"], 3)
    result["speedup_cpu"] = round(result["official_style_cpu_s"] / result["ditkit_sample_cpu_s"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
