"""``ditkit info CHECKPOINT``: what a checkpoint holds — config, parameters, Gflops."""

from __future__ import annotations

import json
import math
import warnings


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="print a checkpoint's config, parameter count and Gflops",
        description="Load a checkpoint (a ditkit folder, an official DiT state dict .pt, or an official "
        "train.py checkpoint) and print its model / diffusion / codec config, class names, the ditkit "
        "version that wrote it, its parameter count and forward Gflops per image.",
    )
    add_checkpoint_arguments(p)
    p.add_argument("--raw-weights", action="store_true",
                   help="for a train.py checkpoint, read the raw 'model' weights instead of the EMA")
    p.add_argument("--json", action="store_true", help="print the config as JSON only")
    p.set_defaults(func=run)


def add_checkpoint_arguments(parser) -> None:
    """The CHECKPOINT positional and ``--num-heads`` (official files do not store it), for commands that load one."""
    parser.add_argument("checkpoint", help="checkpoint folder, its config.json, an official .pt file, a diffusers "
                                           "DiT folder, a UniDiffuser folder, or a bundled model's name "
                                           "(mnist-dit, shapes-dit, shapes-t2i; UniDiffuser: mnist-uni)")
    parser.add_argument("--num-heads", type=int, default=None,
                        help="attention heads, for official files of no paper size (the weights do not store it)")


def _kv(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "(defaults)"
    return "none" if value is None else str(value)


def _scores(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def print_extra(extra: dict) -> None:
    """The ``extra`` record (how the model was made and scored) as readable lines; ``--json`` has it whole."""
    if not extra:
        return
    for key, value in extra.items():
        label = key.replace("_", " ")
        if key == "training_command" and "training_commands" in extra:
            continue  # the first of training_commands
        if key == "train_config":
            print(f"{label}: {len(value)} settings (see --json)")
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            print(f"{label}:" + "".join(f"\n  $ {v}" for v in value))
        elif key == "evaluation" and isinstance(value, dict):
            print("evaluation:")
            for command in value.get("commands", []):
                print(f"  $ {command}")
            for name, metrics in value.get("metrics", {}).items():
                shown = _scores(metrics) if isinstance(metrics, dict) else f"{metrics:.4g}" \
                    if isinstance(metrics, float) else metrics
                print(f"  {name}: {shown}")
            for k, v in value.items():
                if k not in ("commands", "metrics"):
                    print(f"  {k.replace('_', ' ')}: {_kv(v) if isinstance(v, dict) else v}")
        elif isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            print(f"{label}: {_kv(value)}")
        elif isinstance(value, (str, int, float, bool)):
            print(f"{label}: {value}")
        else:
            print(f"{label}: {json.dumps(value)}")


def run_unidiffuser(args) -> int:
    """A UniDiffuser folder: its parts' configs, parameter counts (read off the weights' headers) and Gflops."""
    from safetensors import safe_open

    from ..checkpoints.bundled import locate
    from ..checkpoints.format import WEIGHTS_NAME
    from ..checkpoints.unidiffuser import read_unidiffuser_config
    from ..models.uvit import UViTConfig, uvit_flops

    folder = locate(args.checkpoint)
    config = read_unidiffuser_config(folder)
    if args.json:
        print(json.dumps(config, indent=2))
        return 0
    counts: dict[str, int] = {}  # per part: uvit, caption_decoder
    with safe_open(str(folder / WEIGHTS_NAME), "pt") as weights:
        for key in weights.keys():
            part = key.split(".", 1)[0]
            counts[part] = counts.get(part, 0) + math.prod(weights.get_slice(key).get_shape())
    uvit = UViTConfig.from_dict(config["uvit"])
    print(f"checkpoint: {folder} (ditkit UniDiffuser)")
    print(f"written by: ditkit {config.get('ditkit_version')}")
    print(f"uvit: {_kv(config['uvit'])}")
    for key in ("image_size", "codec", "text_encoder", "image_encoder", "caption_decoder"):
        print(f"{key.replace('_', ' ')}: {_kv(config.get(key))}")
    print_extra(config.get("extra") or {})
    print("parameters: " + ", ".join(f"{part} {n:,}" for part, n in counts.items()))
    print(f"Gflops: {uvit_flops(uvit) / 1e9:.4g} per sample (the U-ViT forward, all three modalities)")
    return 0


def run(args) -> int:
    from ..checkpoints import load_checkpoint
    from ..checkpoints.unidiffuser import is_unidiffuser_folder
    from ..models.flops import count_flops

    if is_unidiffuser_folder(args.checkpoint):
        return run_unidiffuser(args)

    with warnings.catch_warnings():  # guesses are printed below as notes instead
        warnings.simplefilter("ignore")
        loaded = load_checkpoint(args.checkpoint, use_ema=not args.raw_weights, num_heads=args.num_heads)
    config = loaded.config
    if args.json:
        print(json.dumps(config, indent=2))
        return 0
    model = config["model"]
    params = sum(v.numel() for v in loaded.model.state_dict().values())
    names = config.get("class_names")
    print(f"checkpoint: {loaded.source} ({loaded.kind})")
    author = "diffusers" if loaded.kind == "diffusers" else "the official DiT code"
    print(f"written by: ditkit {config['ditkit_version']}" if config.get("ditkit_version") else f"written by: {author}")
    print(f"model: {_kv(model)}")
    print(f"diffusion: {_kv(config.get('diffusion'))}")
    print(f"codec: {_kv(config.get('codec'))}")
    if names:
        shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
        print(f"class names: {shown}")
    else:
        print(f"class names: none ({model['num_classes']} classes)" if model["num_classes"] else
              "class names: none (unconditional)")
    print_extra(config.get("extra") or {})
    print(f"parameters: {params:,}")
    print(f"Gflops: {count_flops(loaded.model.config) / 1e9:.4g} per image "
          f"(input {model['in_channels']}x{model['input_size']}x{model['input_size']})")
    for note in loaded.notes:
        print(f"note: {note}")
    return 0
