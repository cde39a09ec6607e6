"""Package a training checkpoint as one of ditkit's bundled models (maintainers' tool).

    python examples/bundle_model.py --run runs/mnist-bundled --step latest    # -> mnist-dit
    python examples/bundle_model.py --run runs/shapes-bundled --step latest   # -> shapes-dit

Copies the EMA weights and the model config of one checkpoint of a ``ditkit train`` run on a bundled
dataset into ``src/ditkit/assets/models/<data>-dit``, records in ``config.json`` the exact training
command(s), the step, the data and the ditkit version, then scores the result the way the README reports
it (1,000 samples, 100 per class, DPM-Solver++ 20 steps, cfg 4, against the dataset's held-out split with
its bundled classifier) and records those numbers too.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import tempfile
from pathlib import Path

from ditkit.checkpoints import load_checkpoint
from ditkit.cli import main as ditkit_main
from ditkit.version import __version__

EVAL_COMMANDS = [
    "ditkit sample --checkpoint {model} --num-samples 1000 --cfg-scale 4 --sampler dpm++ --steps 20 --seed 1 --npz "
    "--out {samples}",
    "ditkit eval --samples {samples}/samples.npz --reference {data}:test --out {samples}/metrics.json",
]


def command_history(train_record: dict) -> list[str]:
    """The training commands behind a run, oldest first, following --init-from: a parent that is a checkpoint
    of another run (RUN/checkpoints/step-N) has that run's train_config.json; a parent that is a bundled
    model folder carries its own history in config.json."""
    commands, record = [], train_record
    while True:
        argv = record["command"]
        commands.insert(0, shlex.join(["ditkit", *argv[1:]] if argv and argv[0].endswith("ditkit") else argv))
        init_from = record["config"].get("init_from")
        if not init_from:
            return commands
        parent = Path(init_from)
        if len(parent.parents) > 1 and (parent.parents[1] / "train_config.json").is_file():
            record = json.loads((parent.parents[1] / "train_config.json").read_text())
        else:
            if (parent / "config.json").is_file():
                extra = json.loads((parent / "config.json").read_text()).get("extra", {})
                commands[:0] = extra.get("training_commands") or []
            return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the ditkit train output folder")
    parser.add_argument("--step", default="latest", help="checkpoint step to bundle (default: the newest)")
    parser.add_argument("--dest", help="where to write the model (default: src/ditkit/assets/models/<data>-dit)")
    args = parser.parse_args()

    run = Path(args.run)
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    if not checkpoints:
        raise SystemExit(f"no checkpoints in {run / 'checkpoints'}")
    ckpt = checkpoints[-1] if args.step == "latest" else run / "checkpoints" / f"step-{int(args.step):07d}"
    train_record = json.loads((run / "train_config.json").read_text())
    config = json.loads((ckpt / "config.json").read_text())
    step = config["extra"]["training_step"]
    commands = command_history(train_record)
    config["extra"] = {
        "weights": "ema",
        "training_step": step,
        "training_command": commands[-1],
        "training_commands": commands,
        "training_data": train_record["data"],
        "train_config": config["extra"].get("train_config"),
        "bundled_by": f"examples/bundle_model.py (ditkit {__version__})",
    }
    load_checkpoint(ckpt)  # refuse to bundle something that does not load

    data = train_record["data"]["name"]
    dest = Path(args.dest or f"src/ditkit/assets/models/{data}-dit")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=dest.parent))
    shutil.copy2(ckpt / "model.safetensors", staging / "model.safetensors")
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)

    # Score it exactly as the README reports (the default checkpoint is now this model).
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples"
        for template in EVAL_COMMANDS:
            argv = shlex.split(template.format(samples=samples, model=dest.resolve(), data=data))[1:]
            if ditkit_main(argv):
                raise SystemExit(f"failed: {template}")
        report = json.loads((samples / "metrics.json").read_text())
    config["extra"]["evaluation"] = {
        "commands": [t.format(samples="bundled-eval", model=dest.name, data=data) for t in EVAL_COMMANDS],
        "extractor": report.get("extractor"),
        "metrics": report["metrics"],
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    size = (dest / "model.safetensors").stat().st_size / 2**20
    print(json.dumps({"bundled": str(dest), "step": step, "weights_mib": round(size, 2),
                      "metrics": report["metrics"]}, indent=2))


if __name__ == "__main__":
    main()
