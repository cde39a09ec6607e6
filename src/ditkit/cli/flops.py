"""``ditkit flops``: forward Gflops (multiply-accumulates, as the paper counts them) and parameters."""

from __future__ import annotations

from ..models.registry import ALL_BLOCKS, MODEL_PRESETS, TEXT_BLOCKS


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "flops",
        help="print a model's forward Gflops per image (MACs, as in the paper) and parameter count",
        description="Forward-pass Gflops per image (multiply-accumulates, the paper's convention) and "
        "parameter count of a DiT at a given image size. Example: ditkit flops --model DiT-XL/2 --image-size 256",
    )
    p.add_argument("--model", default="DiT-XL/2",
                   help=f"model name, one of {', '.join(MODEL_PRESETS)} (default: DiT-XL/2)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels (default: 256)")
    p.add_argument("--block", choices=ALL_BLOCKS, default="adaln-zero",
                   help="conditioning block design (default: adaln-zero; cross-text and joint-text are text models)")
    p.add_argument("--text-dim", type=int, default=768,
                   help="text blocks: the text encoder's state width (default: 768, CLIP ViT-L/14; MiniLM: 384)")
    p.add_argument("--text-len", type=int, default=77,
                   help="text blocks: text tokens per prompt (default: 77, CLIP; MiniLM: 32)")
    p.add_argument("--num-classes", type=int, default=1000,
                   help="number of classes; 0 for an unconditional model (default: 1000)")
    space = p.add_mutually_exclusive_group()
    space.add_argument("--vae-factor", type=int, default=8,
                       help="downsampling factor of the latent codec (default: 8, the SD VAE; 4 latent channels)")
    space.add_argument("--pixel", action="store_true",
                       help="pixel-space model: no codec, 3 input channels (same as --vae-factor 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..models.flops import model_complexity

    downsample = 1 if args.pixel else args.vae_factor
    text = dict(text_dim=args.text_dim, text_len=args.text_len, num_classes=0) if args.block in TEXT_BLOCKS \
        else dict(num_classes=args.num_classes)
    info = model_complexity(args.model, args.image_size, downsample=downsample, block=args.block, **text)
    cfg = info["config"]
    space = "pixel space" if downsample == 1 else f"latents /{downsample}"
    words = f", text {args.text_len}x{args.text_dim}" if args.block in TEXT_BLOCKS else ""
    print(f"{args.model} ({args.block}) at {args.image_size}px, {space}: input {cfg['in_channels']}x"
          f"{cfg['input_size']}x{cfg['input_size']}, {info['tokens']} tokens{words}")
    print(f"Gflops: {info['gflops']:.2f}")
    print(f"params: {info['params']:,}")
    return 0
