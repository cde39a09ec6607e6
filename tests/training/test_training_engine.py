"""The reshaped training engine: flags generated from TrainConfig, re-running a finished run, precision
``auto``, and the pluggable objective."""

import json
import os
from dataclasses import fields

import pytest
import torch
from safetensors.torch import load_file

import ditkit.precision as precision
from ditkit.cli import build_parser
from ditkit.cli.train import config_from_args
from ditkit.training import DiffusionObjective, TrainConfig, train
from tests.training.test_training import TINY_FLAGS, config, make_folder, run_cli  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data"), per_class=4)


def test_every_config_field_is_a_flag_with_the_dataclass_default():
    parsed = build_parser().parse_args(["train", "--data", "mnist"])
    got = config_from_args(parsed)
    assert got == TrainConfig(data="mnist")  # every default comes from the dataclass
    names = {f.name for f in fields(TrainConfig) if f.metadata.get("cli", True) and "nested" not in f.metadata}
    train_parser = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
                        if a.prog.endswith(" train"))
    dests = {action.dest for action in train_parser._actions}
    assert names <= dests
    assert {"diffusion__diffusion_steps", "diffusion__noise_schedule", "diffusion__process"} <= dests
    # flags spelled as before keep working (negative forms included)
    parsed = build_parser().parse_args(["train", "--data", "x", "--no-tf32", "--no-progress", "--no-flip",
                                        "--fid-every", "5", "--fid-samples", "7", "--depth", "2",
                                        "--diffusion-steps", "500"])
    got = config_from_args(parsed)
    assert got.diffusion.diffusion_steps == 500 and got.diffusion.noise_schedule == "linear"
    assert (got.tf32, got.progress, got.flip, got.fid_every, got.fid_samples) == (False, False, False, 5, 7)
    assert got.model_overrides == {"depth": 2}


def test_cli_flags_land_in_train_config_json(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    args = ["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "2", "--global-batch-size", "4",
            "--sample-every", "0", "--fid-samples", "7", "--noise-schedule", "cosine", "--sample-cfg", "2.5",
            "--precision", "fp32", "--out", str(out), "--no-progress"]
    assert run_cli(args).returncode == 0
    cfg = json.load(open(out / "train_config.json"))
    assert cfg["config"]["fid_samples"] == 7 and cfg["config"]["fid_every"] == 0
    assert cfg["config"]["diffusion"]["noise_schedule"] == "cosine" == cfg["diffusion"]["noise_schedule"]
    assert cfg["config"]["sample_cfg"] == 2.5
    assert cfg["precision"] == {"requested": "fp32", "resolved": "fp32"}


def test_rerunning_a_finished_run_with_resume_latest_exits_cleanly(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    args = ["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "2", "--global-batch-size", "4",
            "--sample-every", "0", "--out", str(out), "--no-progress"]
    assert run_cli(args).returncode == 0
    before = {name: os.path.getmtime(out / name) for name in ("train_config.json", "metrics.jsonl")}
    for _ in range(2):  # the same command again, twice
        again = run_cli([*args, "--resume", "latest"])
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr and "already at step 2" in again.stdout
        assert "--max-steps 2" in again.stdout
    assert before == {name: os.path.getmtime(out / name) for name in before}  # nothing rewritten


def test_precision_auto_follows_the_cpu_flags(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n")
    assert "amx_bf16" in precision.cpu_flags(str(info))
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert precision.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision("fp32", "cpu") == "fp32"  # an explicit choice is kept


def test_precision_auto_is_logged_and_recorded(folder, tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli(["--data", folder, "--image-size", "8", *TINY_FLAGS, "--max-steps", "1", "--global-batch-size",
                      "4", "--sample-every", "0", "--out", str(out), "--no-progress"])
    assert result.returncode == 0
    resolved = precision.resolve_precision("auto", "cpu")
    assert f"precision auto → {resolved}" in result.stderr
    cfg = json.load(open(out / "train_config.json"))
    assert cfg["precision"] == {"requested": "auto", "resolved": resolved}
    assert cfg["config"]["precision"] == resolved


def test_a_custom_objective_plugs_into_the_loop(folder, tmp_path):
    """The loss is a callable objective(net, batch, generator) -> per-sample losses; extra entries are logged."""
    seen = []

    def objective(net, batch, generator):
        seen.append(sorted(batch))
        losses = DiffusionObjective(objective.diffusion)(net, batch, generator)
        return {**losses, "x_mean": batch["x"].mean(dim=(1, 2, 3))}

    from ditkit.diffusion import create_diffusion

    objective.diffusion = create_diffusion(None)
    plain = train(config(folder, tmp_path / "a", max_steps=2, precision="fp32"))
    custom = train(config(folder, tmp_path / "b", max_steps=2, precision="fp32"), objective=objective)
    assert seen == [["x", "y"], ["x", "y"]]
    a = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    b = [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")]
    assert [r["loss"] for r in a] == [r["loss"] for r in b] and plain["loss"] == custom["loss"]
    assert all("x_mean" in r and "x_mean" not in q for r, q in zip(b, a))
    assert torch.isfinite(torch.tensor([r["x_mean"] for r in b])).all()


def test_fid_every_scores_a_class_run_with_fid_and_class_accuracy(tmp_path, run_cli):
    common = ["--data", "mnist", "--image-size", "16", *TINY_FLAGS, "--max-steps", "4", "--global-batch-size", "4",
              "--sample-every", "0", "--no-progress"]
    out, plain = tmp_path / "run", tmp_path / "plain"
    assert run_cli([*common, "--fid-every", "2", "--fid-samples", "10", "--out", str(out)]).returncode == 0
    logged = [json.loads(line)["eval"] for line in open(out / "metrics.jsonl") if '"eval"' in line]
    assert len(logged) == 2 and all(set(e) == {"fid", "class_accuracy"} for e in logged)  # steps 2 and 4
    assert all(0.0 <= e["class_accuracy"] <= 1.0 and e["fid"] > 0 for e in logged)
    assert run_cli([*common, "--out", str(plain)]).returncode == 0  # evaluating changes no trained number
    for name in ("model.safetensors", "train_model.safetensors"):
        a, b = (load_file(str(run / "checkpoints" / "step-0000004" / name)) for run in (out, plain))
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_fid_every_that_cannot_run_stops_before_training(folder, tmp_path, run_cli, monkeypatch):
    """A folder's FID needs the Inception weights: offline, one message before any step, nothing written."""
    monkeypatch.setenv("DITKIT_CACHE", str(tmp_path / "empty-cache"))
    bad = run_cli(["--data", folder, "--image-size", "8", *TINY_FLAGS, "--fid-every", "2", "--max-steps", "2",
                   "--global-batch-size", "4",
                   "--out", str(tmp_path / "x"), "--no-progress"])
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert "Inception" in bad.stderr and not (tmp_path / "x" / "checkpoints").exists()
    assert not (tmp_path / "x" / "train_config.json").exists()
