"""``ditkit app``: start the local web app (generate, monitor training, explore model sizes)."""

from __future__ import annotations

from .sampling import add_sampling_flags


_ABOUT = ("Start ditkit's web app (Gradio) on this machine: a Generate tab (bundled models, checkpoints, "
          "UniDiffuser models), a Train-monitor tab (loss/FID curves, EMA grids of a run folder) and a "
          "Model-explorer tab (Gflops, parameters, tokens). Local only; no share links, no telemetry. "
          'Needs the app extra: pip install "ditkit[app]".')


def add_parser(subparsers) -> None:
    help_line = "start a local web app: generate images, monitor training runs, explore model sizes"
    p = subparsers.add_parser("app", help=help_line, description=_ABOUT)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                       "only; 0.0.0.0 opens it to your network)")
    p.add_argument("--port", type=int, help="port (default: 7860, or the next free one)")
    p.add_argument("--runs-dir", default="runs", help="where to look for training runs and their checkpoints "
                                                      "(default: ./runs)")
    p.add_argument("--max-images", type=int, default=16, help="most images one request may ask for (default 16)")
    add_sampling_flags(p, ("device",))  # the sampling commands' --device; precision and the rest are inputs
    p.set_defaults(func=run)


def run(args) -> int:
    from ..app import require_gradio
    from ..errors import DitkitError

    if args.max_images < 1:
        raise DitkitError(f"--max-images must be at least 1, got {args.max_images}")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise DitkitError(f"--port must be between 1 and 65535, got {args.port}")
    require_gradio()  # says how to install it when missing
    import torch

    from ..app.server import serve
    from ..app.ui import AppSettings

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DitkitError(f"--device {device}: no CUDA GPU is available here; use --device cpu")
    serve(AppSettings(runs_dir=args.runs_dir, device=device, max_images=args.max_images), host=args.host,
          port=args.port)
    return 0
