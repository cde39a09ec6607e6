"""The out-of-the-box demo (``./run demo``): offline, CPU, a few minutes.

It runs the same ``ditkit`` commands a user would type, printing each one first:
1. sample a 10×10 grid of digits from the bundled pretrained model, one of coloured shapes (RGB), and one
   from the bundled text-to-image model (prompts, the last four naming colour–shape pairs it never saw);
2. score 500 of its samples against held-out MNIST with the bundled offline classifier (FID, accuracy);
3. train a small DiT on the bundled MNIST digits for a few hundred steps (progress bar, loss curve);
4. sample from that fresh model and score it the same way;
5. run every UniDiffuser mode of the bundled ``mnist-uni`` (``ditkit uni MODE``: text → image, image → text,
   pairs, images, captions, and both variations) and draw them in one figure;
then prints where every PNG and JSON landed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from .cli import main as ditkit_main


def _run(args: list[str]) -> None:
    print(f"\n$ ditkit {shlex.join(args)}", flush=True)
    code = ditkit_main(args)
    if code:
        raise SystemExit(f"demo: 'ditkit {args[0]}' failed (exit {code})")


# Shown under each image of the text-to-image grid; the last four are held-out colour–shape pairs.
DEMO_PROMPTS = (
    "a large red circle in the top left", "a small blue square at the bottom", "there is a large white star on the right",
    "a large yellow diamond in the centre", "a small green cross above a large magenta circle",
    "a large cyan triangle left of a small orange square", "a small red square right of a large blue circle",
    "In the bottom right, a large green star", "a large blue star in the centre", "a large red triangle at the top",
    "a small green circle below a large yellow square", "there is a large magenta square on the left",
)


UNI_PROMPT_ITEM, UNI_IMAGE_ITEM = 3, 7  # test items (digits in turn) giving the prompt (a three) and image (a seven)


def _uni_modes(out: Path, n: int = 4) -> Path:
    """Every mode of the bundled mnist-uni, each by its ``ditkit uni`` command, drawn as one figure."""
    from PIL import Image

    from .diffusion.unidiffuser import MODES
    from .evaluation.digit_scoring import digit_test_items
    from .fileio import atomic_path
    from .imaging import to_uint8
    from .pipelines.uni_figure import draw_modes, rows_from_folders
    from .pipelines.unidiffuser import MODE_INPUTS

    captions, _, item = digit_test_items(UNI_IMAGE_ITEM + 1, 32)
    prompt, image = captions[UNI_PROMPT_ITEM], to_uint8(item(UNI_IMAGE_ITEM))  # (32, 32, 1)
    out.mkdir(parents=True, exist_ok=True)
    image_path = out / "input-digit.png"
    Image.fromarray(image[..., 0]).save(image_path)
    folders = {}
    for mode in MODES:
        needs = MODE_INPUTS[mode]
        given = ["--prompt", prompt] if needs == "prompts" else ["--image", str(image_path)] if needs else []
        folders[mode] = out / mode
        _run(["uni", mode, "--checkpoint", "mnist-uni", *given, "-n", str(n), "--seed", "0", "--no-progress",
              "--out", str(folders[mode])])
    figure = draw_modes(rows_from_folders(folders, prompt, image), n)
    with atomic_path(out / "modes.png", suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120)
    return out / "modes.png"


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())["metrics"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ditkit-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="where everything is written (default runs/demo)")
    parser.add_argument("--train-steps", type=int, default=300, help="steps of the short training (default 300)")
    parser.add_argument("--eval-samples", type=int, default=500, help="bundled-model samples to score (default 500)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    started = time.time()
    digits = ",".join(str(d) for _ in range(10) for d in range(10))

    # 1. the bundled model: a 10×10 grid, ten of each digit, at the sampling it records (Heun 10 steps, cfg 2.5)
    _run(["sample", "--classes", digits, "--seed", "0", "--out", str(out / "bundled-grid")])
    _run(["sample", "--checkpoint", "shapes-dit", "--classes", digits, "--seed", "0", "--out", str(out / "shapes-grid")])
    prompts = [arg for prompt in DEMO_PROMPTS for arg in ("--prompt", prompt)]
    _run(["sample", "--checkpoint", "shapes-t2i", *prompts, "--cfg-scale", "4", "--sampler", "dpm++", "--steps", "20",
          "--seed", "0", "--out", str(out / "text-grid")])
    # 2. how good is it? offline FID and class accuracy against held-out digits
    _run(["sample", "--num-samples", str(args.eval_samples), "--seed", "1", "--npz", "--out", str(out / "bundled-eval")])
    _run(["eval", "--samples", str(out / "bundled-eval" / "samples.npz"), "--reference", "mnist:test",
          "--out", str(out / "bundled-eval" / "metrics.json")])
    # 3. training works: a small DiT on the bundled digits
    train_dir = out / "train"
    _run(["train", "--data", "mnist", "--model", "DiT-S/4", "--depth", "2", "--hidden-size", "64",
          "--num-heads", "4", "--max-steps", str(args.train_steps), "--global-batch-size", "32", "--lr", "1e-3",
          "--ema-decay", "0.99", "--ema-warmup", "--ckpt-every", str(args.train_steps), "--sample-every",
          str(args.train_steps), "--seed", "0", "--out", str(train_dir)])
    # 4. sample the freshly trained model and score it the same way
    checkpoint = sorted((train_dir / "checkpoints").glob("step-*"))[-1]
    _run(["sample", "--checkpoint", str(checkpoint), "--num-samples", "100", "--cfg-scale", "4", "--sampler",
          "dpm++", "--steps", "20", "--seed", "0", "--npz", "--out", str(out / "trained-samples")])
    _run(["eval", "--samples", str(out / "trained-samples" / "samples.npz"), "--reference", "mnist:test",
          "--out", str(out / "trained-samples" / "metrics.json")])

    # 5. UniDiffuser: every mode of the bundled mnist-uni, one command each, in one figure
    modes_figure = _uni_modes(out / "uni")

    bundled = _metrics(out / "bundled-eval" / "metrics.json")
    trained = _metrics(out / "trained-samples" / "metrics.json")
    losses = [json.loads(line) for line in (train_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r["loss"] for r in losses if "loss" in r]
    print(f"\n== ditkit demo finished in {time.time() - started:.0f} s ==")
    print(f"bundled models  grids: {out / 'bundled-grid' / 'grid.png'} (digits), "
          f"{out / 'shapes-grid' / 'grid.png'} (coloured shapes),")
    print(f"                {out / 'text-grid' / 'grid.png'} (text to image; the last four are unseen pairs)")
    print(f"                FID (mnist classifier features) {bundled['fid']:.2f}, "
          f"class accuracy {100 * bundled['class_accuracy']:.1f}%  -> {out / 'bundled-eval' / 'metrics.json'}")
    print(f"short training  loss {losses[0]:.3f} -> {losses[-1]:.3f} over {args.train_steps} steps; "
          f"curve: {train_dir / 'loss_curve.png'}")
    print(f"                samples: {out / 'trained-samples' / 'grid.png'}; FID {trained['fid']:.2f}, "
          f"class accuracy {100 * trained['class_accuracy']:.1f}%")
    print(f"                metrics log: {train_dir / 'metrics.jsonl'}")
    print(f"UniDiffuser     every mode of mnist-uni (text → image, image → text, pairs, ...): {modes_figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
