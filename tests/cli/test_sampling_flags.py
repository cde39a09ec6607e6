"""One sampling config (``pipelines.settings.SamplingConfig``): every sampling command takes its flags from it,
with the same names, defaults and help, and a bare command samples the way the checkpoint records it samples best."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import fields

import numpy as np
import pytest
from PIL import Image

from ditkit.cli import build_parser, main
from ditkit.cli.sampling import COMMON
from ditkit.pipelines.settings import SamplingConfig

SAMPLING_COMMANDS = ("sample", "uni", "t2i-eval", "uni-eval")
KNOBS = {f.name: f for f in fields(SamplingConfig)}


def _knob_flags(command: str) -> dict:
    """The sampling flags of ``ditkit COMMAND``: knob name → (flags, default, choices, help)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {a.dest: (tuple(a.option_strings), a.default, a.choices, a.help) for a in sub._actions if a.dest in KNOBS}


def test_every_sampling_command_spells_each_flag_alike_with_the_same_default():
    found = {command: _knob_flags(command) for command in SAMPLING_COMMANDS}
    for command, flags in found.items():
        assert set(COMMON) <= set(flags), command
    for name in KNOBS:
        variants = {flags[name] for flags in found.values() if name in flags}
        assert len(variants) <= 1, f"--{name} differs between commands: {variants}"
        if variants:
            (options, default, _, _), = variants
            assert default == SamplingConfig.default(name), name
            assert options[0] == (KNOBS[name].metadata.get("flag") or "--" + name.replace("_", "-")), name
    assert found["sample"]["cfg_scale"][0] == ("--cfg-scale", "--scale")  # the old spelling stays an alias
    assert found["sample"]["precision"][1] == "auto" and found["sample"]["device"][1] is None
    for name in ("sampler", "steps", "cfg_scale"):  # None: the checkpoint's record, else the process's default
        assert SamplingConfig.default(name) is None


def test_no_sampling_command_declares_a_sampling_flag_of_its_own():
    spellings = {flag for f in KNOBS.values() for flag in [f.metadata.get("flag") or "--" + f.name.replace("_", "-"),
                                                           *f.metadata.get("aliases", ())]}
    for command in SAMPLING_COMMANDS:
        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        own = [flag for a in sub._actions if a.dest not in KNOBS for flag in a.option_strings]
        assert not spellings & set(own), command


def test_the_recorded_command_uses_the_declared_flags():
    args = SamplingConfig.command_args(sampler="ddim", steps=3, cfg_scale=2.5, eta=None, seed=1, batch_size=4,
                                       precision="fp32", device="cpu", progress=False)
    assert args == ["--sampler", "ddim", "--steps", "3", "--cfg-scale", "2.5", "--seed", "1", "--batch-size", "4",
                    "--precision", "fp32"]


@pytest.fixture()
def recorded_dit(tmp_path):
    from tests.cli.test_cli_sample import save_tiny_checkpoint

    folder = save_tiny_checkpoint(tmp_path / "dit", num_classes=2)
    config = json.loads((folder / "config.json").read_text())
    config["extra"]["sampling"] = {"sampler": "ddim", "steps": 3, "cfg_scale": 2.5}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_bare_sample_uses_the_checkpoints_recorded_sampling(recorded_dit, tmp_path, monkeypatch, capsys):
    from ditkit.app.models import ModelCache

    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--checkpoint", str(recorded_dit)]) == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "ditkit-samples" / "run.json").read_text())
    assert (run["settings"]["sampler"], run["settings"]["steps"], run["settings"]["cfg_scale"]) == ("ddim", 3, 2.5)
    assert "--sampler ddim --steps 3 --cfg-scale 2.5" in run["command"]
    assert ModelCache("cpu").get(str(recorded_dit)).sampling() == {"sampler": "ddim", "steps": 3, "scale": 2.5}
    # a flag given overrides the record; another sampler takes its own default steps
    assert main(["sample", "--checkpoint", str(recorded_dit), "--sampler", "dpm++", "--out", "other"]) == 0
    other = json.loads((tmp_path / "other" / "run.json").read_text())["settings"]
    assert (other["sampler"], other["steps"], other["cfg_scale"]) == ("dpm++", 20, 2.5)


def test_bare_uni_t2i_uses_the_checkpoints_recorded_sampling(tmp_path, monkeypatch, capsys):
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    model = UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                              text_encoder={"type": "text", "spec": "chars", "max_length": 12},
                              image_encoder="pooled:2", vocab=build_vocab(["a red circle"]),
                              decoder=dict(width=32, depth=1, heads=2), seed=0)
    model.sampling = {"sampler": "dpm-solver", "steps": 3, "scale": 2.0}
    model.save(tmp_path / "uni")
    monkeypatch.chdir(tmp_path)
    assert main(["uni", "t2i", "--prompt", "a red circle", "--checkpoint", str(tmp_path / "uni")]) == 0
    run = json.loads((tmp_path / "ditkit-uni" / "run.json").read_text())
    assert (run["sampler"], run["steps"], run["scale"]) == ("dpm-solver", 3, 2.0)
    argv = shlex.split(run["command"])
    assert argv[:3] == ["ditkit", "uni", "t2i"] and "--steps 3 --cfg-scale 2.0" in run["command"]
    argv[argv.index("--out") + 1] = str(tmp_path / "replay")
    assert main(argv[1:]) == 0  # the recorded command redraws the image
    assert np.array_equal(np.asarray(Image.open(tmp_path / "replay" / "0000.png")),
                          np.asarray(Image.open(tmp_path / "ditkit-uni" / "0000.png")))


def test_uni_takes_batch_size_and_precision_and_records_what_it_ran(tmp_path, monkeypatch, capsys):
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    model = UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                              text_encoder={"type": "text", "spec": "chars", "max_length": 12},
                              image_encoder="pooled:2", vocab=build_vocab(["a red circle"]),
                              decoder=dict(width=32, depth=1, heads=2), seed=0)
    model.save(tmp_path / "uni")
    monkeypatch.chdir(tmp_path)
    flags = ["--checkpoint", str(tmp_path / "uni"), "--steps", "3", "--batch-size", "2", "--precision", "bf16"]
    assert main(["uni", "joint", "-n", "3", *flags]) == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "ditkit-uni" / "run.json").read_text())
    assert (run["batch_size"], run["precision"]) == (2, "bf16")
    assert "--batch-size 2 --precision bf16" in run["command"]
    assert sorted(p.name for p in (tmp_path / "ditkit-uni").glob("0*.png")) == ["0000.png", "0001.png", "0002.png"]
    argv = shlex.split(run["command"])
    argv[argv.index("--out") + 1] = str(tmp_path / "replay")
    assert main(argv[1:]) == 0  # the recorded command redraws the same pairs
    assert (tmp_path / "replay" / "captions.txt").read_text() == (tmp_path / "ditkit-uni" / "captions.txt").read_text()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "replay" / "0002.png")),
                          np.asarray(Image.open(tmp_path / "ditkit-uni" / "0002.png")))
    with pytest.raises(SystemExit) as exit_:
        main(["uni", "joint", *flags[:4], "--precision", "fp16", "--out", "bad"])
    assert exit_.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
