"""The DiT architecture options (SwiGLU, RMSNorm, QK-norm, 2-D RoPE, long skips) on small real models:
they build and train in fp32 and bf16, change what they claim to change and nothing else, save, load, sample,
train through ``ditkit train`` with exact resume, and are refused where they cannot go."""

import json
import subprocess
import zlib

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ditkit.checkpoints import load_model, save_pretrained
from ditkit.cli.train import _CHOICES
from ditkit.errors import DitkitError
from ditkit.interop.diffusers import export_diffusers
from ditkit.models import DiTConfig, create_model
from ditkit.models.dit import BLOCKS, MLPS, NORMS, swiglu_width
from ditkit.models.embeddings import apply_rotary, rotary_2d_tables
from ditkit.models.flops import count_flops, count_params
from ditkit.pipelines import generate

SMALL = dict(input_size=16, patch_size=4, in_channels=3, hidden_size=32, depth=3, num_heads=2, num_classes=4)
OPTIONS = {
    "swiglu": dict(mlp="swiglu"),
    "rmsnorm": dict(norm="rmsnorm"),
    "qk_norm": dict(qk_norm=True),
    "rope": dict(rope=True),
    "long_skips": dict(long_skips=True),
    "all": dict(mlp="swiglu", norm="rmsnorm", qk_norm=True, rope=True, long_skips=True),
}
ALL = OPTIONS["all"]


def perturbed(model: nn.Module) -> nn.Module:
    """Every parameter drawn from a generator seeded by its name: models that share a parameter name get the
    same values there, and the zero-initialised gates and output layer no longer hide differences."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def inputs(config: DiTConfig, n: int = 2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, config.in_channels, config.input_size, config.input_size, generator=g)
    return x, torch.tensor([3, 700][:n]), torch.tensor([1, config.num_classes][:n])


def build(**options) -> nn.Module:
    torch.manual_seed(0)
    return create_model(dict(SMALL, **options))


# --------------------------------------------------------------------------------------------
# Each option builds, runs forward and backward, and changes what it says
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_option_trains_in_every_block(option, block, precision):
    model = perturbed(build(block=block, **OPTIONS[option])).train()
    x, t, y = inputs(model.config)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(x, t, y)
    assert out.shape == (2, 6, 16, 16) and out.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    out.float().square().mean().backward()
    for name, p in model.named_parameters():
        if name.startswith("y_embedder"):  # rows of labels not drawn get no gradient
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_a_bf16_model_runs_with_every_option():
    model = perturbed(build(**ALL)).to(torch.bfloat16)
    x, t, y = inputs(model.config)
    out = model(x.bfloat16(), t, y)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("option", [o for o in OPTIONS if o != "long_skips"])
def test_each_option_changes_the_output(option):
    x, t, y = inputs(DiTConfig(**SMALL))
    with torch.no_grad():
        default = perturbed(build()).eval()(x, t, y)
        changed = perturbed(build(**OPTIONS[option])).eval()(x, t, y)
    assert (default - changed).abs().max() > 1e-3


def test_long_skips_start_as_the_model_without_them_then_change_it():
    x, t, y = inputs(DiTConfig(**SMALL))
    plain = perturbed(build()).eval()
    skips = perturbed(build(long_skips=True)).eval()
    for projection in skips.skip_projections:  # back to their initialisation: zero
        nn.init.zeros_(projection.weight)
        nn.init.zeros_(projection.bias)
    with torch.no_grad():
        assert torch.equal(skips(x, t, y), plain(x, t, y))
        skips.skip_projections[0].weight[0, -1] = 1.0  # a skip path in use changes the output
        assert not torch.equal(skips(x, t, y), plain(x, t, y))
    fresh = build(long_skips=True)  # and a freshly built model starts there
    assert all(not p.any() for p in fresh.skip_projections.parameters())


@pytest.mark.parametrize("depth, pairs", [(4, [(0, 3), (1, 2)]), (5, [(0, 4), (1, 3)]), (2, [(0, 1)])])
def test_long_skips_join_mirrored_blocks_and_skip_an_odd_middle(depth, pairs):
    model = perturbed(create_model(dict(SMALL, depth=depth, long_skips=True))).eval()
    outputs, joined = {}, {}
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, out))
    for i, projection in enumerate(model.skip_projections):
        projection.register_forward_pre_hook(lambda m, a, i=i: joined.__setitem__(i, a[0]))
    with torch.no_grad():
        model(*inputs(model.config))
    assert len(model.skip_projections) == len(pairs) == depth // 2
    for source, target in pairs:
        assert torch.equal(joined[source][..., 32:], outputs[source])  # the kept half: block `source`'s output
        assert torch.equal(joined[source][..., :32], outputs[target - 1])  # the main half: the previous block's


# --------------------------------------------------------------------------------------------
# Sizes: defaults unchanged; each option's parameters and MACs as claimed
# --------------------------------------------------------------------------------------------


def test_defaults_keep_the_paper_models_keys_and_numbers():
    torch.manual_seed(0)
    before = create_model(dict(SMALL))
    torch.manual_seed(0)
    explicit = create_model(dict(SMALL, mlp="gelu", norm="layernorm", qk_norm=False, rope=False, long_skips=False))
    a, b = before.state_dict(), explicit.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    block_keys = sorted(k.split(".", 2)[2] for k in a if k.startswith("blocks.0."))
    assert block_keys == sorted(f"{m}.{p}" for m in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2",
                                                     "adaLN_modulation.1") for p in ("weight", "bias"))
    assert "pos_embed" in a and not any("skip" in k or "qk_norm" in k for k in a)


def test_old_configs_without_the_options_take_the_defaults():
    old = {k: v for k, v in DiTConfig(**SMALL).to_dict().items()
           if k not in ("mlp", "norm", "qk_norm", "rope", "long_skips")}
    config = DiTConfig.from_dict(old)
    assert (config.mlp, config.norm, config.qk_norm, config.rope, config.long_skips) == \
        ("gelu", "layernorm", False, False, False)
    assert config.changed_options() == []
    assert load_model("mnist-dit").config.changed_options() == []  # a bundled checkpoint written before them


MNIST = dict(input_size=32, patch_size=4, in_channels=1, hidden_size=128, depth=6, num_heads=4, num_classes=10)


def test_parameter_counts_and_macs_of_each_option():
    d, depth, tokens, head = 128, 6, 64, 32
    base_params, base_macs = count_params(MNIST), count_flops(MNIST)
    assert base_params == 1_879_328
    width = swiglu_width(4 * d)
    assert width == 344
    swiglu = (d * 2 * width + 2 * width + width * d + d) - (d * 4 * d + 4 * d + 4 * d * d + d)  # 1,200 a block
    expected = {  # option -> (parameters added, MACs added per image)
        "swiglu": (depth * swiglu, tokens * depth * (3 * width * d - 8 * d * d)),
        "rmsnorm": (0, 0),  # the adaLN norms are affine-free either way; norms are not MACs
        "qk_norm": (depth * 2 * head, 0),  # a scale per head channel for q and for k
        "rope": (-tokens * d, 0),  # the sin-cos pos_embed is no longer stored; rotations are not MACs
        "long_skips": (depth // 2 * (2 * d * d + d), tokens * depth // 2 * 2 * d * d),
    }
    for option, (params, macs) in expected.items():
        config = dict(MNIST, **OPTIONS[option])
        assert count_params(config) - base_params == params, option
        assert count_flops(config) - base_macs == macs, option
    assert abs(swiglu) / (8 * d * d) < 0.01  # SwiGLU holds the GELU MLP's size within 1%


# --------------------------------------------------------------------------------------------
# RoPE: attention scores depend on positions only through their offset
# --------------------------------------------------------------------------------------------


def test_rope_scores_depend_only_on_the_offset_between_tokens():
    grid, head_dim = 5, 16
    cos, sin = rotary_2d_tables(head_dim, grid)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, head_dim, generator=g)
    scores = apply_rotary(q.expand(grid * grid, -1), cos, sin) @ \
        apply_rotary(k.expand(grid * grid, -1), cos, sin).T  # (T, T): the same q and k at every position
    by_offset = {}
    for i in range(grid * grid):
        for j in range(grid * grid):
            offset = (i // grid - j // grid, i % grid - j % grid)
            by_offset.setdefault(offset, []).append(scores[i, j].item())
    assert len(by_offset) == (2 * grid - 1) ** 2
    assert max(max(v) - min(v) for v in by_offset.values()) < 1e-5  # one score per offset (fp32) ...
    values = [v[0] for v in by_offset.values()]
    assert max(values) - min(values) > 0.1  # ... and different offsets score differently
    assert by_offset[(1, 0)] != by_offset[(0, 1)]  # rows and columns turn different channels


def test_rope_leaves_prefix_tokens_unrotated():
    cos, sin = rotary_2d_tables(8, 3, prefix=2)
    assert cos.shape == sin.shape == (2 + 9, 4)
    assert torch.equal(cos[:2], torch.ones(2, 4)) and torch.equal(sin[:2], torch.zeros(2, 4))
    assert torch.equal(sin[2], torch.zeros(4))  # grid position (0, 0): angle 0


# --------------------------------------------------------------------------------------------
# Checkpoints, sampling, training through the CLI, export
# --------------------------------------------------------------------------------------------


def test_a_checkpoint_with_options_saves_loads_and_samples(tmp_path):
    model = perturbed(build(**ALL)).eval()
    path = save_pretrained(model, tmp_path / "ckpt", diffusion={"diffusion_steps": 1000, "learn_sigma": True})
    saved = json.loads((path / "config.json").read_text())["model"]
    assert {k: saved[k] for k in ALL} == ALL
    loaded = load_model(path)
    assert loaded.config == model.config
    x, t, y = inputs(model.config)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), model(x, t, y))
    out = generate(loaded, labels=[0, 3], sampler="ddim", steps=3, cfg_scale=2.0, seed=0, progress=False,
                   diffusion_config={"diffusion_steps": 1000, "learn_sigma": True})
    assert out.latents.shape == (2, 3, 16, 16) and torch.isfinite(out.latents).all()


def test_export_to_diffusers_refuses_any_option(tmp_path):
    for option, values in OPTIONS.items():
        model = build(**values)
        with pytest.raises(DitkitError, match="architecture options .* cannot be exported to diffusers"):
            export_diffusers(model, {"model": model.config.to_dict()}, tmp_path / option)
        assert not (tmp_path / option).exists()


def test_ditkit_export_refuses_a_checkpoint_with_options_in_one_line(tmp_path, capsys):
    from ditkit.cli import main

    ckpt = save_pretrained(build(qk_norm=True), tmp_path / "ckpt")
    capsys.readouterr()
    code = main(["export", str(ckpt), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "qk_norm=True" in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_bad_option_values_are_one_clear_error():
    cases = [(dict(mlp="relu"), "mlp must be one of gelu, swiglu"),
             (dict(norm="batchnorm"), "norm must be one of layernorm, rmsnorm"),
             (dict(rope=True, hidden_size=24, num_heads=4), "rope needs a head width .* divisible by 4, got 6"),
             (dict(long_skips=True, depth=1), "long_skips needs a depth of at least 2")]
    for values, message in cases:
        with pytest.raises(DitkitError, match=message):
            DiTConfig(**dict(SMALL, **values))


@pytest.mark.parametrize("block", ["cross-text", "joint-text"])
def test_text_blocks_refuse_the_options(block):
    with pytest.raises(DitkitError, match="text blocks .* take no architecture options yet, got rope=True"):
        DiTConfig(**dict(SMALL, num_classes=0, block=block, text_dim=8, text_len=4, rope=True))


def test_the_cli_spells_the_models_choices():
    assert _CHOICES["mlp"] == MLPS and _CHOICES["norm"] == NORMS


@pytest.fixture
def run_cli(capsys):
    from ditkit.cli import main

    def run(args):
        capsys.readouterr()
        code = main(["train", *args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def test_ditkit_train_with_every_option_resumes_bit_identically(tmp_path, run_cli):
    common = ["--data", "mnist", "--depth", "2", "--hidden-size", "32", "--num-heads", "2", "--patch-size", "4",
              "--global-batch-size", "8", "--sample-every", "0", "--log-every", "1", "--no-progress",
              "--mlp", "swiglu", "--norm", "rmsnorm", "--qk-norm", "on", "--rope", "on", "--long-skips", "on"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli([*common, "--max-steps", "2", "--ckpt-every", "2", "--out", str(straight)]).returncode == 0
    assert run_cli([*common, "--max-steps", "1", "--ckpt-every", "1", "--out", str(split)]).returncode == 0
    resumed = run_cli([*common, "--max-steps", "2", "--ckpt-every", "2", "--out", str(split), "--resume", "latest"])
    assert resumed.returncode == 0, resumed.stderr
    model_config = json.loads((straight / "train_config.json").read_text())["model_config"]
    assert {k: model_config[k] for k in ALL} == ALL
    for name in ("model.safetensors", "train_model.safetensors"):
        a, b = (load_file(str(run / "checkpoints" / "step-0000002" / name)) for run in (straight, split))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert "skip_projections.0.weight" in a and "pos_embed" not in a
    losses = [[json.loads(line)["loss"] for line in open(run / "metrics.jsonl")] for run in (straight, split)]
    assert losses[0] == losses[1]
