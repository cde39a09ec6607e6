"""Package a training checkpoint as one of ditkit's bundled models (maintainers' tool).

    python examples/bundle_model.py --run runs/mnist-bundled --step latest    # -> mnist-dit
    python examples/bundle_model.py --run runs/shapes-bundled --step latest   # -> shapes-dit
    python examples/bundle_model.py --run runs/shapes-t2i --step latest       # -> shapes-t2i (a text model)
    python examples/bundle_model.py --run runs/shapes-uni --step latest       # -> shapes-uni (a UniDiffuser)

Copies the EMA weights and the model config of one checkpoint of a ``ditkit train`` run on a bundled
dataset into ``src/ditkit/assets/models/<data>-dit``, records in ``config.json`` the exact training
command(s), the step, the data and the ditkit version, then scores the result the way the README reports
it and records those numbers too: a class model on 1,000 samples (100 per class, DPM-Solver++ 20 steps,
cfg 4) against the dataset's held-out split with its bundled classifier; a text model (``<data>-t2i``)
with ``ditkit t2i-eval`` (1,000 test and 500 held-out prompts, the bundled attribute classifier); a UniDiffuser
(``<data>-uni``) with ``ditkit uni-eval`` (500 samples each of t2i, i2t and joint).

Recorded commands hold no absolute paths, so anyone can replay the chain (``training_commands``, in order,
in a fresh folder; ``commands_as_run`` keeps them as they were typed, resumes included): run outputs are
relative to the folder that holds the runs (``--out runs/mnist-bundled``), parents are bundled names (``mnist-dit``) or the
run checkpoint a bundled copy was made from (``extra.bundled_from``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

from ditkit.checkpoints import BUNDLED_MODELS_DIR, load_checkpoint
from ditkit.checkpoints.format import UNI_FORMAT
from ditkit.cli import main as ditkit_main
from ditkit.pipelines.unidiffuser import UniDiffuser
from ditkit.version import __version__

EVAL_COMMANDS = [
    "ditkit sample --checkpoint {model} --num-samples 1000 --cfg-scale {cfg_scale} --sampler {sampler} --steps {steps} "
    "--seed 1 --precision fp32 --npz --out {samples}",  # fp32: the recorded scores replay on any CPU
    "ditkit eval --samples {samples}/samples.npz --reference {data}:test --out {samples}/metrics.json",
]
TEXT_EVAL_COMMANDS = [
    "ditkit t2i-eval --checkpoint {model} --num-seen 1000 --num-held-out 500 --cfg-scale 4 --sampler dpm++ "
    "--steps 20 --seed 0 --precision fp32 --out {samples}/metrics.json",
]
TEXT_EXTRACTORS = {"shapes": "attribute-classifier:shapes", "mnist": "classifier:mnist"}  # what reads t2i images
UNI_EVAL_COMMANDS = [
    "ditkit uni-eval --checkpoint {model} --num-samples {uni_samples} --seed 0 --precision fp32 "
    "--out {samples}/metrics.json",
]


def command_history(train_record: dict) -> list[str]:
    """The training commands behind a run, oldest first, following --init-from: a parent that is a checkpoint
    of another run (RUN/checkpoints/step-N) has that run's train_config.json; a parent that is a bundled
    model folder carries its own history in config.json."""
    commands, record = [], train_record
    while True:
        argv = record["command"]
        ditkit_cli = argv and argv[0].endswith(("ditkit", "ditkit/__main__.py"))  # the script, or python -m ditkit
        commands.insert(0, shlex.join(["ditkit", *argv[1:]] if ditkit_cli else argv))
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


PATH_FLAGS = ("--out", "--init-from", "--latent-cache", "--text-cache", "--data")


def portable_path(value: str, runs_root: Path) -> str:
    """A path as another machine can replay it: a bundled model by its name; a bundled copy by the run
    checkpoint it was made from; anything else relative to the folder that holds the runs."""
    path = Path(value)
    if not path.is_absolute():
        return value
    if path.parent == BUNDLED_MODELS_DIR.resolve():
        return path.name
    bundled_from = _read_extra(path).get("bundled_from")
    if bundled_from:
        return bundled_from
    return os.path.relpath(path, runs_root.parent)


def _read_extra(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text()).get("extra") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def portable_command(command: str, runs_root: Path) -> str:
    """``command`` with the paths after --out / --init-from / ... made portable (no absolute paths)."""
    argv = shlex.split(command)
    for i, arg in enumerate(argv[:-1]):
        if arg in PATH_FLAGS and Path(argv[i + 1]).is_absolute():
            argv[i + 1] = portable_path(argv[i + 1], runs_root)
    return shlex.join(argv)


def _flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def replay_commands(commands: list[str], final_step: int) -> list[str]:
    """The chain as a fresh machine replays it: ``--resume`` dropped (resume is exact, and ``--resume latest``
    refuses a folder with no checkpoint) and each run's ``--max-steps`` set to the step it is used at — the
    step its successor's ``--init-from`` names, ``final_step`` for the last. Nothing in a step's arithmetic
    reads ``--max-steps`` (the learning rate is constant), so stopping there gives the same weights."""
    argvs = [shlex.split(c) for c in commands]
    for i, argv in enumerate(argvs):
        resume = _flag_value(argv, "--resume")
        if resume is not None:
            j = argv.index("--resume")
            del argv[j:j + 2]
        out = _flag_value(argv, "--out")
        stop = final_step if i == len(argvs) - 1 else None
        parent = _flag_value(argvs[i + 1], "--init-from") if i + 1 < len(argvs) else None
        if parent and out and Path(parent).parent == Path(out) / "checkpoints":
            stop = int(Path(parent).name.removeprefix("step-"))
        if stop is not None:
            if "--max-steps" in argv[:-1]:
                argv[argv.index("--max-steps") + 1] = str(stop)
            else:
                argv += ["--max-steps", str(stop)]
    return [shlex.join(argv) for argv in argvs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the ditkit train output folder")
    parser.add_argument("--step", default="latest", help="checkpoint step to bundle (default: the newest)")
    parser.add_argument("--dest", help="where to write the model (default: src/ditkit/assets/models/<data>-dit, "
                        "<data>-t2i for a text model, <data>-uni for a UniDiffuser)")
    parser.add_argument("--uni-samples", type=int, default=500, help="UniDiffuser: samples per mode to score")
    parser.add_argument("--sampler", help="the sampler it is scored with and records as its default (class "
                        "models: extra.sampling, default dpm++; a flow-matching UniDiffuser: its sampling record, "
                        "default heun; bare `ditkit sample` / `ditkit uni` use it)")
    parser.add_argument("--steps", type=int, help="sampling steps, as --sampler (class models: default 20)")
    parser.add_argument("--cfg-scale", type=float, help="guidance scale, as --sampler (class models: default 4)")
    args = parser.parse_args()
    class_defaults = {"sampler": "dpm++", "steps": 20, "cfg_scale": 4.0}

    run = Path(args.run)
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    if not checkpoints:
        raise SystemExit(f"no checkpoints in {run / 'checkpoints'}")
    ckpt = checkpoints[-1] if args.step == "latest" else run / "checkpoints" / f"step-{int(args.step):07d}"
    train_record = json.loads((run / "train_config.json").read_text())
    config = json.loads((ckpt / "config.json").read_text())
    step = config["extra"]["training_step"]
    runs_root = run.resolve().parent  # recorded paths are relative to the folder that holds the runs
    as_run = [portable_command(c, runs_root) for c in command_history(train_record)]
    commands = replay_commands(as_run, step)
    train_config = dict(config["extra"].get("train_config") or {})
    for key in ("out", "init_from", "latent_cache", "text_cache"):
        if isinstance(train_config.get(key), str):
            train_config[key] = portable_path(train_config[key], runs_root)
    uni = config.get("format") == UNI_FORMAT  # a UniDiffuser folder keeps its text encoder at the top level
    text_encoder = config["extra"].get("text_encoder")
    config["extra"] = {
        **({"text_encoder": text_encoder} if text_encoder else {}),
        "weights": "ema",
        "training_step": step,
        "training_command": commands[-1],
        "training_commands": commands,
        "commands_as_run": as_run,
        "training_data": train_record["data"],
        "trained_on": {"device": train_record.get("device"), "world_size": train_record.get("world_size"),
                       "precision": (train_record.get("precision") or {}).get("resolved")},
        "train_config": train_config,
        "bundled_by": f"examples/bundle_model.py (ditkit {__version__})",
        "bundled_from": os.path.relpath(ckpt.resolve(), runs_root.parent),
    }
    if uni:  # refuse to bundle something that does not load; a flow model records how it samples best
        model = UniDiffuser.load(ckpt)
        given = {"sampler": args.sampler, "steps": args.steps, "scale": args.cfg_scale}
        if model.family == "flow" and any(v is not None for v in given.values()):
            config["sampling"] = model.sampling_settings(**given)
    else:
        load_checkpoint(ckpt)
        for key, value in class_defaults.items():
            setattr(args, key, value if getattr(args, key) is None else getattr(args, key))

    data = train_record["data"]["name"]
    kind = "uni" if uni else "t2i" if text_encoder else "dit"
    dest = Path(args.dest or f"src/ditkit/assets/models/{data}-{kind}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=dest.parent))
    shutil.copy2(ckpt / "model.safetensors", staging / "model.safetensors")
    (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)

    # Score it exactly as the README reports.
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples"
        templates = {"uni": UNI_EVAL_COMMANDS, "t2i": TEXT_EVAL_COMMANDS, "dit": EVAL_COMMANDS}[kind]
        if kind != "dit":
            samples.mkdir()  # the text evaluations write only their report
        fill = dict(data=data, uni_samples=args.uni_samples, sampler=args.sampler, steps=args.steps,
                    cfg_scale=f"{args.cfg_scale:g}" if args.cfg_scale is not None else None)
        for template in templates:
            argv = shlex.split(template.format(samples=samples, model=dest.resolve(), **fill))[1:]
            if ditkit_main(argv):
                raise SystemExit(f"failed: {template}")
        report = json.loads((samples / "metrics.json").read_text())
    if kind == "uni":
        metrics = report["scores"]
    elif kind == "t2i":
        metrics = {k: report[k] for k in ("seen", "held_out", "all")}
    else:
        metrics = report["metrics"]
    if kind == "dit":  # how it samples best: what bare `ditkit sample --checkpoint NAME` uses
        config["extra"]["sampling"] = {"sampler": args.sampler, "steps": args.steps, "cfg_scale": args.cfg_scale}
    config["extra"]["evaluation"] = {
        "commands": [t.format(samples="bundled-eval", model=dest.name, **fill) for t in templates],
        "extractor": report.get("extractor") if kind == "dit" else TEXT_EXTRACTORS.get(data),
        "metrics": metrics,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    size = (dest / "model.safetensors").stat().st_size / 2**20
    print(json.dumps({"bundled": str(dest), "step": step, "weights_mib": round(size, 2),
                      "metrics": metrics}, indent=2))


if __name__ == "__main__":
    main()
