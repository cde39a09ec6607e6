"""Study files: the shipped miniature expands as documented; every bad spec fails before anything runs."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ditkit.errors import DitkitError
from ditkit.study import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[study]
data = "mnist"
image_size = 32

[budget]
steps = 3

[sizes]
T = {hidden_size = 32, depth = 1, num_heads = 2}
"""


def spec_from(text: str, tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(text))
    return path


def load(text: str, tmp_path: Path):
    return load_spec(spec_from(text, tmp_path))


def test_shipped_miniature_has_three_sizes_by_three_patches_and_four_blocks():
    spec = load_spec(ROOT / "studies" / "miniature.toml")
    axes = [c.axes for c in spec.cells]
    scaling = {(a["size"], a["patch_size"]) for a in axes if a["block"] == "adaln-zero"}
    assert scaling == {(s, p) for s in ("S", "M", "L") for p in (2, 4, 8)}
    blocks = {a["block"] for a in axes if (a["size"], a["patch_size"]) == ("M", 4)}
    assert blocks == {"adaln-zero", "adaln", "cross-attention", "in-context"}
    assert len(spec.cells) == 12  # the shared M/4 adaLN-Zero cell runs once
    assert spec.data == "mnist" and spec.image_size == 32 and spec.eval["every"] > 0
    # Gflops grow with size at a fixed patch, and as the patch shrinks at a fixed size (the paper's axes).
    g = {(a["size"], a["patch_size"], a["block"]): c.gflops for a, c in zip(axes, spec.cells)}
    assert g[("S", 4, "adaln-zero")] < g[("M", 4, "adaln-zero")] < g[("L", 4, "adaln-zero")]
    assert g[("L", 8, "adaln-zero")] < g[("L", 4, "adaln-zero")] < g[("L", 2, "adaln-zero")]


def test_grid_options_seeds_and_equal_compute_budget(tmp_path):
    text = BASE.replace("steps = 3", "compute = 1000.0").replace("image_size = 32", "image_size = 32\nseeds = [0, 1]")
    spec = load(text + """
        [train]
        global_batch_size = 8
        [[grid]]
        sizes = ["T"]
        patch_sizes = [8, 4]
        lr = [1e-3, 1e-4]
        """, tmp_path)
    names = [c.name for c in spec.cells]
    assert len(names) == 8 and "T-p8-adaln-zero-l0.001-seed1" in names
    for cell in spec.cells:  # equal training compute: Gflops × 3 × batch × steps ≈ the budget
        assert cell.max_steps == int(1000.0 // (cell.gflops * 3 * 8))
        assert cell.train["lr"] == cell.axes["lr"] and cell.train["max_steps"] == cell.max_steps
        assert cell.train["seed"] == cell.axes["seed"]
    p8 = next(c for c in spec.cells if c.axes["patch_size"] == 8)
    p4 = next(c for c in spec.cells if c.axes["patch_size"] == 4)
    assert p8.max_steps > p4.max_steps  # the cheaper model trains longer


BAD = {
    "unknown model": ('[[grid]]\nmodels = ["DiT-Q/2"]\n', "unknown model 'DiT-Q/2'"),
    "unknown size": ('[[grid]]\nsizes = ["Huge"]\n', "unknown model size 'Huge'"),
    "unknown block": ('[[grid]]\nsizes = ["T"]\nblocks = ["adaln-one"]\n', "unknown block 'adaln-one'"),
    "patch does not divide": ('[[grid]]\nsizes = ["T"]\npatch_sizes = [4, 3]\n', "patch size 3"),
    "duplicate patch": ('[[grid]]\nsizes = ["T"]\npatch_sizes = [4, 4]\n', "duplicate cells"),
    "duplicate size": ('[sizes.T2]\nhidden_size = 32\ndepth = 1\nnum_heads = 2\n[[grid]]\nsizes = ["T", "T2"]\n',
                       "duplicate cells"),
    "unknown grid key": ('[[grid]]\nsizes = ["T"]\npatches = [4]\n', "unknown key in [[grid]] #1: patches"),
    "unknown section": ('[grid_extra]\nx = 1\n[[grid]]\nsizes = ["T"]\n', "unknown key in the study file: grid_extra"),
    "unknown train option": ('[train]\nlearning_rate = 1\n[[grid]]\nsizes = ["T"]\n',
                             "unknown training option in [train]: learning_rate"),
    "study-owned option": ('[train]\nmax_steps = 5\n[[grid]]\nsizes = ["T"]\n', "set by the study itself"),
    "bad option value": ('[train]\nlr = -1.0\n[[grid]]\nsizes = ["T"]\n', "learning rate must be positive"),
    "no grid": ("", "at least one [[grid]]"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_spec_is_one_clear_error(case, tmp_path):
    extra, message = BAD[case]
    with pytest.raises(DitkitError) as info:
        load(BASE + extra, tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("budget,message", [
    ("steps = 0", "at least 1 step"),
    ("steps = 10\nminutes = 0", "must be positive"),
    ("compute = 0.0", "must be positive"),
    ("", "needs steps"),
])
def test_zero_budget_is_refused(budget, message, tmp_path):
    with pytest.raises(DitkitError, match=message):
        load(BASE.replace("steps = 3", budget) + '[[grid]]\nsizes = ["T"]\n', tmp_path)


def test_unknown_dataset_and_eval_settings(tmp_path):
    with pytest.raises(DitkitError, match="unknown dataset 'cifar'"):
        load(BASE.replace('"mnist"', '"cifar"') + '[[grid]]\nsizes = ["T"]\n', tmp_path)
    with pytest.raises(DitkitError, match="sampler must be one of"):
        load(BASE + '[eval]\nevery = 1\nsampler = "eulerr"\n[[grid]]\nsizes = ["T"]\n', tmp_path)
    with pytest.raises(DitkitError, match="set \\[eval\\] every"):
        load(BASE.replace("steps = 3", "steps = 3\nminutes = 1") + '[[grid]]\nsizes = ["T"]\n', tmp_path)
    with pytest.raises(DitkitError, match="not found"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(DitkitError, match="cannot read"):
        load_spec(spec_from("[study\n", tmp_path))


def test_parse_spec_from_a_dict():
    spec = parse_spec({"study": {"data": "mnist"}, "budget": {"steps": 2},
                       "sizes": {"T": {"hidden_size": 32, "depth": 1, "num_heads": 2}},
                       "grid": [{"sizes": ["T"], "patch_sizes": [8], "blocks": ["adaln", "in-context"]}]})
    assert [c.name for c in spec.cells] == ["T-p8-adaln", "T-p8-in-context"]


def test_cli_bad_spec_one_line_exit_2_nothing_written(tmp_path):
    path = spec_from(BASE + '[[grid]]\nsizes = ["T"]\npatch_sizes = [5]\n', tmp_path)
    out = tmp_path / "out"
    for action in (["plan", str(path)], ["run", str(path), "--out", str(out)]):
        proc = subprocess.run([sys.executable, "-m", "ditkit", "study", *action], capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and "patch size 5" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_plan_lists_the_cells():
    proc = subprocess.run([sys.executable, "-m", "ditkit", "study", "plan", str(ROOT / "studies" / "miniature.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("study miniature: 12 cells on mnist at 32 px")
    assert "L-p2-adaln-zero" in proc.stdout and "M-p4-in-context" in proc.stdout and "300 steps" in proc.stdout


def test_latent_study_cells_see_the_vae_latents(tmp_path):
    spec = load(BASE.replace("image_size = 32", 'image_size = 64\nvae = "ema"') + '[[grid]]\nsizes = ["T"]\n'
                'patch_sizes = [2, 4]\n', tmp_path)
    assert [(c.model_config["input_size"], c.model_config["in_channels"]) for c in spec.cells] == [(8, 4), (8, 4)]
    with pytest.raises(DitkitError, match="does not divide the 8x8 model input"):
        load(BASE.replace("image_size = 32", 'image_size = 64\nvae = "ema"') + '[[grid]]\nsizes = ["T"]\n'
             'patch_sizes = [16]\n', tmp_path)


def test_recipe_ladder_cells_resolve_recipes_and_process_options(tmp_path):
    """A grid varies recipes, the process's own options by name and the model's options; each cell records the
    resolved settings, and a flow cell's model predicts no variance (as the trainer builds it)."""
    spec = load(BASE + '[eval]\nevery = 1\nsampler = "heun"\nsteps = 3\n[[grid]]\nsizes = ["T"]\n'
                'recipe = ["dit", "fast"]\ntime_shift = [2.0]\nmlp = ["swiglu"]\n', tmp_path)
    by_recipe = {c.train["recipe"]: c for c in spec.cells}
    fast, paper = by_recipe["fast"], by_recipe["dit"]
    assert fast.train["diffusion"] == {"process": "flow", "time_sampling": "logit-normal", "time_shift": 2.0}
    assert fast.train["lr"] == 2e-3 and fast.train["adam_beta2"] == 0.95 and "lr" not in paper.train
    assert fast.model_config["learn_sigma"] is False and paper.model_config["learn_sigma"] is True
    assert fast.model_config["mlp"] == "swiglu" and spec.eval["sampler"] == "heun"
    assert len(load_spec(ROOT / "studies" / "recipe.toml").cells) == 8
    with pytest.raises(DitkitError, match="invalid choice|unknown recipe 'nope'"):
        load(BASE + '[[grid]]\nsizes = ["T"]\nrecipe = ["nope"]\n', tmp_path)
