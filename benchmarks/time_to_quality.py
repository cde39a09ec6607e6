"""Time to quality: score every checkpoint of a training run and pair it with the CPU seconds that made it.

    python benchmarks/time_to_quality.py RUN_DIR [--sampler heun --steps 10 --cfg-scale 4 -n 1000] [--every K]

For each ``RUN_DIR/checkpoints/step-N`` (every K-th, or those given with ``--steps-at``): draw ``-n`` samples
of the EMA spread evenly over the classes (seed 1, as the bundled models' evaluation), score them against
``mnist:test`` (or ``--reference``) with the bundled classifier's features, and print one JSON line: the step,
the run's training CPU seconds at that step (``cpu_s`` in ``metrics.jsonl``, hooks excluded), network
evaluations per sample, FID and class accuracy. ``--target-fid`` / ``--target-accuracy`` add whether the
checkpoint reaches them; the last line names the first that does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def read_cpu_seconds(run_dir: str) -> dict[int, float]:
    """step → cumulative training CPU seconds, from the run's metrics log (steps without a log line: None).

    Each training process logs its own CPU seconds, so a resumed run's counter starts again from zero: where it
    drops, the seconds spent up to the step the run resumed from are added to everything after."""
    out, offset, last = {}, 0.0, None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if "cpu_s" in record and "step" in record and "eval" not in record:
                step, cpu = int(record["step"]), float(record["cpu_s"])
                if last is not None and cpu + offset < last:  # a new process: resumed from the latest step before
                    earlier = [s for s in out if s < step]
                    offset = out[max(earlier)] if earlier else 0.0
                out[step] = last = cpu + offset
    return out


def evaluations_per_sample(sampler: str, steps: int, cfg_scale: float) -> int:
    """Network evaluations per sample (a guided evaluation runs both halves in one batched forward)."""
    calls = 2 * steps - 1 if sampler == "heun" else steps
    return calls


def score_checkpoint(path: str, args) -> dict:
    from ditkit.evaluation import evaluate
    from ditkit.evaluation.sources import ImageSet
    from ditkit.pipelines import generate, load_codec, load_for_sampling

    loaded = load_for_sampling(path)
    codec = load_codec(loaded, None)
    out = generate(loaded.model, num_samples=args.num_samples, sampler=args.sampler, steps=args.steps,
                   cfg_scale=args.cfg_scale, seed=1, batch_size=250, codec=codec,
                   diffusion_config=loaded.diffusion_config, progress=False, precision=args.precision)
    images = ImageSet(out.images, None if out.labels is None else __import__("numpy").array(out.labels),
                      f"{path} samples")
    report = evaluate(images, args.reference, extractor=args.extractor, progress=False)
    return report["metrics"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--sampler", default="heun")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--cfg-scale", type=float, default=4.0)
    p.add_argument("-n", "--num-samples", type=int, default=1000)
    p.add_argument("--reference", default="mnist:test")
    p.add_argument("--extractor", default="classifier:mnist")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--every", type=int, default=1, help="score every K-th checkpoint")
    p.add_argument("--steps-at", type=int, nargs="*", help="score only these training steps")
    p.add_argument("--target-fid", type=float, default=37.9)
    p.add_argument("--target-accuracy", type=float, default=0.985)
    args = p.parse_args(argv)

    cpu = read_cpu_seconds(args.run_dir)
    ckpt_dir = os.path.join(args.run_dir, "checkpoints")
    steps = sorted(int(n.split("-")[1]) for n in os.listdir(ckpt_dir) if n.startswith("step-"))
    steps = [s for s in steps if s in set(args.steps_at)] if args.steps_at else steps[args.every - 1::args.every]
    first = None
    for step in steps:
        started = time.process_time()
        metrics = score_checkpoint(os.path.join(ckpt_dir, f"step-{step:07d}"), args)
        reached = metrics["fid"] <= args.target_fid and metrics.get("class_accuracy", 0) >= args.target_accuracy
        line = {"run": args.run_dir, "step": step, "cpu_s": cpu.get(step), "sampler": args.sampler,
                "steps": args.steps, "nfe": evaluations_per_sample(args.sampler, args.steps, args.cfg_scale),
                "cfg_scale": args.cfg_scale, "samples": args.num_samples, "fid": round(metrics["fid"], 2),
                "class_accuracy": metrics.get("class_accuracy"), "reached": reached,
                "eval_cpu_s": round(time.process_time() - started, 1)}
        print(json.dumps(line), flush=True)
        if reached and first is None:
            first = line
    print(json.dumps({"run": args.run_dir, "first_reaching_target": first}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
