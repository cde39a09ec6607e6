"""Few-step samplers against a many-step reference on one checkpoint, with the same initial noise.

    python benchmarks/sampler_fid.py --checkpoint mnist-dit --cfg-scale 2.5 -n 500 heun:10 dpm++:10 euler:20 euler:250

Every sampler starts each sample from the same noise (sample i depends only on the seed and i), so the FIDs are
paired: their differences are much smaller than the FID's own sampling noise. Prints one JSON line per sampler
(network evaluations per sample, FID and class accuracy on the bundled classifier's features against
``--reference``) and the FID of each relative to the last one given (the reference).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def main(argv=None) -> int:
    from ditkit.evaluation import evaluate
    from ditkit.evaluation.sources import ImageSet
    from ditkit.pipelines import generate, load_codec, load_for_sampling

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samplers", nargs="+", metavar="NAME:STEPS", help="the last one is the reference")
    p.add_argument("--checkpoint", default="mnist-dit")
    p.add_argument("--cfg-scale", type=float, default=2.5)
    p.add_argument("-n", "--num-samples", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reference", default="mnist:test")
    p.add_argument("--extractor", default="classifier:mnist")
    args = p.parse_args(argv)

    loaded = load_for_sampling(args.checkpoint)
    codec = load_codec(loaded, None)
    results = []
    for item in args.samplers:
        name, steps = item.split(":")
        started = time.process_time()
        out = generate(loaded.model, num_samples=args.num_samples, sampler=name, steps=int(steps),
                       cfg_scale=args.cfg_scale, seed=args.seed, batch_size=250, codec=codec,
                       diffusion_config=loaded.diffusion_config, progress=False)
        report = evaluate(ImageSet(out.images, np.array(out.labels), item), args.reference,
                          extractor=args.extractor, progress=False)
        calls = 2 * int(steps) - 1 if name == "heun" else int(steps)
        results.append({"sampler": name, "steps": int(steps), "nfe": calls, "samples": args.num_samples,
                        "cfg_scale": args.cfg_scale, "fid": round(report["metrics"]["fid"], 2),
                        "class_accuracy": report["metrics"].get("class_accuracy"),
                        "cpu_s": round(time.process_time() - started, 1)})
        print(json.dumps(results[-1]), flush=True)
    reference = results[-1]["fid"]
    print(json.dumps({"relative_to_reference": {f"{r['sampler']}:{r['steps']}": round(r["fid"] / reference - 1, 4)
                                                for r in results}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
