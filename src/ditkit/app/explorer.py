"""The Model-explorer tab's work: Gflops, parameters and tokens of any DiT, beside the paper's table."""

from __future__ import annotations

from ..errors import DitkitError

# The DiT paper's Table 4 (Peebles & Xie, 2022): forward Gflops per image at 256 px (ImageNet latents,
# SD VAE /8, 1000 classes, adaLN-Zero) and the parameter counts of the four sizes.
PAPER_GFLOPS_256 = {
    "DiT-S/8": 0.36, "DiT-S/4": 1.41, "DiT-S/2": 6.06,
    "DiT-B/8": 1.42, "DiT-B/4": 5.57, "DiT-B/2": 23.01,
    "DiT-L/8": 5.01, "DiT-L/4": 19.70, "DiT-L/2": 80.70,
    "DiT-XL/8": 7.39, "DiT-XL/4": 29.04, "DiT-XL/2": 118.62,
}
PAPER_PARAMS_M = {"S": 33, "B": 130, "L": 458, "XL": 675}
PAPER_XL2_512_GFLOPS = 524.54
SIZES = ("S", "B", "L", "XL")
PATCHES = (2, 4, 8)
TABLE_HEADERS = ["model", "paper Gflops (256 px)", "paper params", "your choice?"]


def explore(size: str, patch: int, block: str, image_size: int, space: str = "latent") -> dict:
    """Complexity of DiT-{size}/{patch} with ``block`` at ``image_size`` px.

    ``space``: "latent" (SD VAE, /8, 4 channels — the paper's setting) or "pixel" (3 channels).
    Returns ``name, gflops, params, tokens, input`` and the paper's numbers for the same model when it
    has them (256 px latents with adaLN-Zero, or XL/2 at 512 px).
    """
    from ..models.flops import model_complexity

    if size not in SIZES or int(patch) not in PATCHES:
        raise DitkitError(f"choose a size from {', '.join(SIZES)} and a patch from {PATCHES}")
    try:
        image_size = int(image_size)
    except (TypeError, ValueError):
        raise DitkitError(f"the image size must be a whole number of pixels, got {image_size!r}") from None
    if not 8 <= image_size <= 2048:
        raise DitkitError(f"choose an image size from 8 to 2048 px, got {image_size}")
    name = f"DiT-{size}/{int(patch)}"
    downsample = 1 if space == "pixel" else 8
    info = model_complexity(name, image_size, downsample=downsample, block=block, num_classes=1000)
    paper = None
    if space != "pixel" and block == "adaln-zero":
        paper = PAPER_GFLOPS_256.get(name) if image_size == 256 else None
        if name == "DiT-XL/2" and image_size == 512:
            paper = PAPER_XL2_512_GFLOPS
    cfg = info["config"]
    return {"name": name, "gflops": info["gflops"], "params": info["params"], "tokens": info["tokens"],
            "input": f"{cfg['in_channels']}×{cfg['input_size']}×{cfg['input_size']}",
            "paper_gflops": paper, "paper_params_m": PAPER_PARAMS_M[size]}


def summary_markdown(result: dict, block: str, image_size: int) -> str:
    paper = result["paper_gflops"]
    vs = (f" — the paper reports **{paper:.2f}**" if paper is not None
          else " — the paper has no entry for this combination")
    return (f"### {result['name']} · {block} · {image_size} px\n"
            f"- **Gflops** (forward MACs per image): **{result['gflops']:.2f}**{vs}\n"
            f"- **parameters**: {result['params'] / 1e6:.1f} M (paper: {result['paper_params_m']} M for "
            f"this size)\n- **tokens**: {result['tokens']} (input {result['input']})")


def paper_table(highlight: str | None = None) -> list[list]:
    """Rows of the paper's table, the chosen model marked."""
    return [[name, gflops, f"{PAPER_PARAMS_M[name.split('-')[1].split('/')[0]]} M",
             "◀" if name == highlight else ""] for name, gflops in PAPER_GFLOPS_256.items()]
