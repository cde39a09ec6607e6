"""Gflops as the paper counts them (forward MACs per image), checked against the reference numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ditkit.cli import main
from ditkit.errors import DitkitError
from ditkit.models import create_model
from ditkit.models.flops import count_flops, count_params, model_complexity

from tests.conftest import fixture_path

FIXTURES = fixture_path("reference-dit")
OFFICIAL_GFLOPS = json.loads((FIXTURES / "official_gflops.json").read_text())


@pytest.mark.parametrize("key", sorted(OFFICIAL_GFLOPS))
def test_gflops_match_the_paper_within_one_percent(key):
    name, size = key.split("@")
    gflops = model_complexity(name, int(size))["gflops"]
    assert gflops == pytest.approx(OFFICIAL_GFLOPS[key], rel=0.01)


def test_params_match_the_official_count():
    shapes = json.loads((FIXTURES / "official_state_dict_shapes.json").read_text())
    assert model_complexity("DiT-XL/2", 256)["params"] == shapes["DiT-XL/2@256"]["#params"]
    assert count_params("DiT-S/8", input_size=32) == shapes["DiT-S/8@256"]["#params"]


def test_block_designs_cost_what_the_paper_says():
    """Cross-attention adds ~15% for XL/2; adaLN and in-context are within a few % of adaLN-Zero."""
    base = model_complexity("DiT-XL/2", 256)["gflops"]
    cross = model_complexity("DiT-XL/2", 256, block="cross-attention")["gflops"]
    adaln = model_complexity("DiT-XL/2", 256, block="adaln")["gflops"]
    in_context = model_complexity("DiT-XL/2", 256, block="in-context")["gflops"]
    assert 1.10 < cross / base < 1.20
    assert abs(adaln / base - 1) < 0.03
    assert abs(in_context / base - 1) < 0.03
    assert adaln <= base  # adaLN is the cheapest design: no gates


def test_count_flops_accepts_a_model_a_config_and_a_name():
    model = create_model("DiT-S/8", input_size=8, in_channels=4, num_classes=10)
    by_model = count_flops(model)
    assert by_model == count_flops(model.config) == count_flops("DiT-S/8", input_size=8, num_classes=10)
    # halving the patch quadruples the tokens; per-image work (timestep MLP, adaLN) keeps it just under 4x
    assert count_flops("DiT-S/4", input_size=32, num_classes=10) > 3.5 * count_flops("DiT-S/8", input_size=32, num_classes=10)
    # an unconditional model runs too
    assert count_flops("DiT-S/8", input_size=8, num_classes=0) > 0


def test_pixel_space_and_bad_sizes():
    pixel = model_complexity("DiT-S/4", 32, downsample=1)
    assert pixel["config"]["in_channels"] == 3 and pixel["tokens"] == 64
    with pytest.raises(DitkitError, match="downsampling factor 8"):
        model_complexity("DiT-S/2", 100)
    with pytest.raises(DitkitError, match="patch size 8"):
        model_complexity("DiT-S/8", 32)  # 4x4 latents, 8x8 patches


def test_cli_prints_gflops_and_params():
    result = subprocess.run(
        [sys.executable, "-m", "ditkit", "flops", "--model", "DiT-S/2", "--image-size", "256"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Gflops: 6.06" in result.stdout
    assert "32,963,360" in result.stdout


def test_cli_pixel_space(capsys):
    assert main(["flops", "--model", "DiT-S/2", "--image-size", "32", "--pixel", "--block", "in-context"]) == 0
    out = capsys.readouterr().out
    assert "pixel space" in out and "3x32x32" in out


@pytest.mark.parametrize("block", ["cross-text", "joint-text"])
def test_cli_text_blocks_count_their_text(block, capsys):
    assert main(["flops", "--model", "DiT-S/2", "--image-size", "32", "--pixel", "--block", block, "--text-dim", "384",
                 "--text-len", "32"]) == 0
    out = capsys.readouterr().out
    expected = count_flops(dict(input_size=32, patch_size=2, in_channels=3, hidden_size=384, depth=12, num_heads=6,
                                num_classes=0, block=block, text_dim=384, text_len=32)) / 1e9
    assert "text 32x384" in out and f"Gflops: {expected:.2f}" in out
    assert main(["flops", "--model", "DiT-S/2", "--pixel", "--image-size", "32", "--block", block]) == 0
    assert f"Gflops: {expected:.2f}" not in capsys.readouterr().out  # CLIP's 77x768 by default costs more


@pytest.mark.parametrize(
    "args",
    [("--model", "DiT-S/8", "--image-size", "250"), ("--model", "DiT-Q/2"), ("--model", "DiT-S/8", "--image-size", "32"),
     ("--block", "joint-text", "--text-len", "0")],
)
def test_cli_bad_input_is_one_line_exit_2(args, capsys):
    assert main(["flops", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ditkit flops: error:")
