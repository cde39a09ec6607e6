"""Checkpoints: our folder format, the official DiT files, config inference, atomic saves, bad input."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import ditkit.checkpoints as checkpoints
from ditkit.checkpoints import (
    download_official,
    from_pretrained,
    infer_config,
    load_checkpoint,
    load_model,
    save_pretrained,
)
from ditkit.cli import main
from ditkit.codecs import PixelCodec
from ditkit.errors import DitkitError
from ditkit.models import DiTConfig, create_model

from tests.conftest import fixture_path

FIXTURES = fixture_path("reference-dit")
STATE_DICT = FIXTURES / "tiny_dit_state_dict.pt"
TRAIN_CHECKPOINT = FIXTURES / "tiny_dit_train_checkpoint.pt"
TINY = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4, mlp_ratio=4.0,
            num_classes=10, class_dropout_prob=0.1, learn_sigma=True, block="adaln-zero")


def _tiny_model(seed=0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model(dict(TINY, **overrides)).eval()
    with torch.no_grad():  # the zero-initialised layers would hide wrongly loaded weights
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _inputs(config: DiTConfig, n=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, config.in_channels, config.input_size, config.input_size, generator=g)
    t = torch.tensor([0, 500, 999][:n])
    y = torch.tensor([0, config.num_classes - 1, config.num_classes][:n]) if config.num_classes else None
    return x, t, y


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------------------------
# Official layout: every published size has exactly the official keys and shapes
# --------------------------------------------------------------------------------------------


def test_every_official_config_built_by_name_has_the_official_keys_and_shapes():
    official = json.loads((FIXTURES / "official_state_dict_shapes.json").read_text())
    assert len(official) == 13
    for key, shapes in official.items():
        name, size = key.split("@")
        with torch.device("meta"):
            model = create_model(name, input_size=int(size) // 8, in_channels=4, num_classes=1000)
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        expected = {k: v for k, v in shapes.items() if k != "#params"}
        assert ours == expected, key
        assert sum(math.prod(s) for s in ours.values()) == shapes["#params"], key


# --------------------------------------------------------------------------------------------
# Official files
# --------------------------------------------------------------------------------------------


def test_both_official_fixtures_load_the_same_weights_with_the_right_config():
    plain = load_checkpoint(STATE_DICT, num_heads=4)
    with pytest.warns(UserWarning) as caught:
        train = load_checkpoint(TRAIN_CHECKPOINT, num_heads=None)  # no override: heads are guessed
    assert any("guessed 1" in str(w.message) for w in caught)
    assert plain.kind == "official-state-dict" and train.kind == "official-train-checkpoint"
    assert plain.model.config == DiTConfig(**TINY)
    assert train.model.config == DiTConfig(**dict(TINY, num_heads=1))  # guessed: head width 64
    assert any("EMA" in note for note in train.notes)
    assert _same_weights(plain.model, train.model)
    # the train args' VAE becomes the codec; the args' model name (DiT-S/2) contradicts the shapes
    assert train.config["codec"]["source"] == "stabilityai/sd-vae-ft-ema"
    assert any("DiT-S/2" in note for note in train.notes)
    # the official numerics come through the loader (full parity is tested with the model)
    expected = torch.load(FIXTURES / "tiny_dit_expected.pt", weights_only=True)["forward"]
    with torch.no_grad():
        out = load_model(TRAIN_CHECKPOINT, num_heads=4)(expected["x"], expected["t"], expected["y"])
    torch.testing.assert_close(out, expected["out"], atol=1e-5, rtol=0)


def test_train_checkpoint_takes_ema_unless_asked_for_the_raw_weights(tmp_path):
    ema, raw = _tiny_model(seed=1), _tiny_model(seed=2)
    path = tmp_path / "0400000.pt"
    args = argparse.Namespace(model="DiT-S/2", image_size=64, num_classes=10, vae="mse")
    torch.save({"model": raw.state_dict(), "ema": ema.state_dict(), "opt": {}, "args": args}, path)
    assert _same_weights(load_model(path, num_heads=4), ema)
    assert _same_weights(load_model(path, use_ema=False, num_heads=4), raw)
    assert load_checkpoint(path, num_heads=4).config["codec"]["source"] == "stabilityai/sd-vae-ft-mse"


def test_prefixed_and_safetensors_state_dicts_load(tmp_path):
    from safetensors.torch import save_file

    model = _tiny_model()
    ddp = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ddp)
    assert _same_weights(load_model(ddp, num_heads=4), model)
    bare = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(bare))
    assert _same_weights(load_model(bare, num_heads=4), model)


def _meta_state_dict(name_or_config, **overrides):
    with torch.device("meta"):
        return create_model(name_or_config, **overrides).state_dict()


def test_config_inference_from_shapes_of_paper_sizes():
    xl = _meta_state_dict("DiT-XL/2", input_size=64, num_classes=1000)
    assert infer_config(xl) == DiTConfig(input_size=64, patch_size=2, in_channels=4, hidden_size=1152, depth=28,
                                         num_heads=16, num_classes=1000, learn_sigma=True)
    # S/8 in pixel space, 10 classes, no learned sigma: heads from the paper's sizes
    small = _meta_state_dict("DiT-S/8", input_size=32, in_channels=3, num_classes=10, learn_sigma=False)
    inferred = infer_config(small)
    assert (inferred.num_heads, inferred.patch_size, inferred.in_channels) == (6, 8, 3)
    assert (inferred.input_size, inferred.num_classes, inferred.learn_sigma) == (32, 10, False)
    # train args that agree with the shapes give the heads too; an explicit override wins
    notes = []
    assert infer_config(small, train_args=argparse.Namespace(model="DiT-S/8"), notes=notes).num_heads == 6
    assert notes == []
    assert infer_config(small, num_heads=2).num_heads == 2


@pytest.mark.parametrize("block", ["adaln-zero", "adaln", "cross-attention", "in-context"])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_config_inference_recognises_each_block_design(block, num_classes):
    config = DiTConfig(**dict(TINY, block=block, num_classes=num_classes, mlp_ratio=2.0))
    assert infer_config(_meta_state_dict(config), num_heads=4) == config


def test_config_inference_without_label_dropout_has_no_null_row():
    config = DiTConfig(**dict(TINY, class_dropout_prob=0.0))
    state_dict = _meta_state_dict(config)
    assert state_dict["y_embedder.embedding_table.weight"].shape[0] == 10
    assert infer_config(state_dict, num_heads=4, class_dropout_prob=0.0) == config


# --------------------------------------------------------------------------------------------
# Our format
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["adaln-zero", "cross-attention"])
def test_our_format_round_trips_outputs_and_config(tmp_path, block):
    model = _tiny_model(block=block, num_classes=3)
    names = ["circle", "square", "triangle"]
    diffusion = {"noise_schedule": "linear", "diffusion_steps": 1000, "learn_sigma": True}
    path = save_pretrained(model, tmp_path / "ckpt", diffusion=diffusion, codec=PixelCodec(3),
                           class_names=names, extra={"step": 7})
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded, config = from_pretrained(path)
    assert loaded.config == model.config
    assert config["format"] == "ditkit" and config["ditkit_version"]
    assert config["class_names"] == names and config["extra"] == {"step": 7}
    assert config["codec"] == {"type": "pixel", "channels": 3} and config["diffusion"] == diffusion
    x, t, y = _inputs(model.config)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, y), model(x, t, y))
    # the folder, its config.json and its weights file all name the same checkpoint
    for alias in (path / "config.json", path / "model.safetensors", str(path)):
        assert _same_weights(load_model(alias), model)
    assert _leftovers(tmp_path) == []


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path):
    path = save_pretrained(_tiny_model(seed=1), tmp_path / "ckpt")
    newer = _tiny_model(seed=2)
    save_pretrained(newer, path)
    assert _same_weights(load_model(path), newer)
    assert _leftovers(tmp_path) == []


def test_a_failed_save_leaves_the_existing_checkpoint_intact(tmp_path, monkeypatch):
    old = _tiny_model(seed=1)
    path = save_pretrained(old, tmp_path / "ckpt", extra={"step": 1})
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.format, "save_file", disk_full)
    with pytest.raises(OSError):
        save_pretrained(_tiny_model(seed=2), path)
    monkeypatch.undo()
    with pytest.raises(DitkitError, match="JSON"):
        save_pretrained(_tiny_model(seed=2), path, extra={"bad": object()})
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert _same_weights(load_model(path), old)
    assert _leftovers(tmp_path) == []


def test_save_refuses_to_overwrite_what_is_not_a_checkpoint(tmp_path):
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "cat.png").write_bytes(b"\x89PNG")
    with pytest.raises(DitkitError, match="not overwritten"):
        save_pretrained(_tiny_model(), precious)
    assert (precious / "cat.png").read_bytes() == b"\x89PNG"
    with pytest.raises(DitkitError, match="class names"):
        save_pretrained(_tiny_model(), tmp_path / "ckpt", class_names=["only one"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


# --------------------------------------------------------------------------------------------
# Bad input: one readable sentence each
# --------------------------------------------------------------------------------------------


def _error(path, **kwargs) -> str:
    with pytest.raises(DitkitError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_files_and_folders(tmp_path):
    assert "No checkpoint at" in _error(tmp_path / "missing.pt")
    assert "without config.json" in _error(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "ditkit", "model": TINY}))
    assert "no model.safetensors" in _error(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hello": 1}))
    assert "not a ditkit checkpoint config" in _error(tmp_path)
    (tmp_path / "config.json").write_text("{ truncated")
    assert "JSON" in _error(tmp_path)


def test_files_that_are_not_checkpoints(tmp_path):
    from PIL import Image

    png = tmp_path / "cat.png"
    Image.new("RGB", (4, 4)).save(png)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for path in (png, text, empty):
        assert "not a PyTorch checkpoint" in _error(path)
    not_dit = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, not_dit)
    assert "not a DiT state dict" in _error(not_dit)
    lists = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], lists)
    assert "holds no DiT weights" in _error(lists)


class Payload:
    """An arbitrary class: a safe loader must refuse to build it."""


def test_pickles_with_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "hook": Payload()}, path)
    assert "other than tensors" in _error(path)


def test_truncated_files(tmp_path):
    half = tmp_path / "half.pt"
    data = TRAIN_CHECKPOINT.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _error(half)
    folder = save_pretrained(_tiny_model(), tmp_path / "ckpt")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert "truncated or corrupt" in _error(folder)


def test_weights_of_another_config_name_the_mismatch(tmp_path):
    # a checkpoint folder whose config says width 96 but whose weights are width 64
    folder = save_pretrained(_tiny_model(), tmp_path / "ckpt")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["hidden_size"] = 96
    (folder / "config.json").write_text(json.dumps(config))
    message = _error(folder)
    assert "x_embedder.proj.weight is [64, 4, 2, 2] in the checkpoint but [96, 4, 2, 2] in the model" in message
    # an official state dict forced into a config it is not
    message = _error(STATE_DICT, num_heads=4, learn_sigma=False)
    assert "final_layer.linear.weight is [32, 64] in the checkpoint but [16, 64] in the model" in message
    message = _error(STATE_DICT, num_heads=4, block="in-context")
    assert "keys are unexpected" in message and "adaLN_modulation" in message
    assert "heads" in _error(STATE_DICT, num_heads=5)  # 64 is not divisible by 5


# --------------------------------------------------------------------------------------------
# Downloads of the published checkpoints (served from local files here: no internet in tests)
# --------------------------------------------------------------------------------------------


def test_download_verifies_caches_and_resolves_names(tmp_path, monkeypatch):
    server = tmp_path / "server"
    server.mkdir()
    shutil.copy(STATE_DICT, server / "DiT-XL-2-256x256.pt")
    cache = tmp_path / "cache"
    # the tiny file is not DiT-XL/2: verification rejects it and the cache stays empty
    with pytest.raises(DitkitError, match="do not fit"):
        download_official("DiT-XL/2-256", cache, base_url=server.as_uri(), progress=False)
    assert list(cache.iterdir()) == []
    # pretend the published file is the tiny model: it downloads, verifies and is cached
    monkeypatch.setitem(checkpoints.OFFICIAL_CHECKPOINTS, "DiT-XL-2-256x256.pt", dict(TINY))
    path = download_official("DiT-XL/2-256", cache, base_url=server.as_uri(), progress=False)
    assert path == cache / "DiT-XL-2-256x256.pt" and path.read_bytes() == STATE_DICT.read_bytes()
    assert [p.name for p in cache.iterdir()] == ["DiT-XL-2-256x256.pt"]
    # once cached, no server is needed, and load_model resolves the official name through the cache
    assert download_official("DiT-XL-2-256x256.pt", cache, base_url="http://127.0.0.1:9") == path
    monkeypatch.setenv("DITKIT_CACHE", str(cache))
    assert _same_weights(load_model("DiT-XL/2-256", num_heads=4), load_model(STATE_DICT, num_heads=4))


def test_download_when_offline_is_one_clear_error(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DitkitError, match="can't be reached") as info:
        download_official("DiT-XL/2-512", cache, base_url="http://127.0.0.1:9/DiT/models/", progress=False)
    assert "\n" not in str(info.value)
    assert list(cache.iterdir()) == []
    with pytest.raises(DitkitError, match="Unknown official checkpoint"):
        download_official("DiT-B/4-256", cache)


# --------------------------------------------------------------------------------------------
# ditkit info
# --------------------------------------------------------------------------------------------


def test_info_prints_config_params_and_gflops_for_all_three_kinds(tmp_path, capsys):
    folder = save_pretrained(_tiny_model(num_classes=3), tmp_path / "ckpt", class_names=["a", "b", "c"],
                             codec=PixelCodec(3))
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "(ditkit)" in out and "hidden_size=64" in out and "class names: a, b, c" in out
    assert "type=pixel" in out and "parameters: " in out and "Gflops: " in out
    params = sum(v.numel() for v in _tiny_model(num_classes=3).state_dict().values())
    assert f"parameters: {params:,}" in out

    assert main(["info", str(STATE_DICT), "--num-heads", "4"]) == 0
    out = capsys.readouterr().out
    assert "official-state-dict" in out and "num_heads=4" in out and "parameters: 183,200" in out

    assert main(["info", str(TRAIN_CHECKPOINT)]) == 0
    out = capsys.readouterr().out
    assert "official-train-checkpoint" in out and "note: loaded the EMA weights" in out
    assert "sd-vae-ft-ema" in out

    assert main(["info", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class_names"] == ["a", "b", "c"]


def test_info_shows_how_a_bundled_model_was_made_and_scored_line_by_line(capsys):
    from ditkit.checkpoints import bundled_models

    assert main(["info", "shapes-t2i"]) == 0
    out = capsys.readouterr().out
    extra = json.loads((bundled_models()["shapes-t2i"] / "config.json").read_text())["extra"]
    assert "text encoder: type=text, spec=minilm, max_length=32, width=384" in out
    assert f"  $ {extra['training_commands'][0]}\n" in out  # each command alone on its line, ready to copy
    assert f"  $ {extra['evaluation']['commands'][0]}\n" in out
    seen = extra["evaluation"]["metrics"]["seen"]
    assert f"  seen: count_prompts 1000, count {seen['count']:.3f}, shape {seen['shape']:.3f}" in out
    assert "train config: " in out and '"lr"' not in out  # the full training config is in --json
    for command in ("info", "sample"):  # every bundled model is named in the help of the commands taking one
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even at hyphens
        assert all(name in help_text for name in bundled_models()), command


def test_info_bad_input_is_one_line_exit_2(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (tmp_path / "missing", tmp_path, text):
        assert main(["info", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ditkit info: error:") and err.count("\n") == 1


# --------------------------------------------------------------------------------------------
# Bundled models: their recorded training commands replay anywhere
# --------------------------------------------------------------------------------------------


def _bundle_script():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "examples" / "bundle_model.py"
    spec = importlib.util.spec_from_file_location("bundle_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_configs_record_no_absolute_paths():
    bundled = checkpoints.bundled_models()
    assert {"mnist-dit", "shapes-dit"} <= set(bundled)
    for name, folder in bundled.items():
        extra = json.loads((folder / "config.json").read_text())["extra"]
        commands = [extra["training_command"], *extra["training_commands"]]
        assert extra["training_command"] == extra["training_commands"][-1]
        for command in commands:
            for arg in command.split():
                assert not arg.startswith(("/", "~")), f"{name}: absolute path {arg} in {command}"
        assert "--out runs/" in extra["training_command"]
        for key in ("out", "init_from"):
            value = extra["train_config"].get(key)
            assert value is None or not Path(value).is_absolute(), (name, key, value)
        assert not Path(extra["bundled_from"]).is_absolute()
        # the record replays: no resume, the last run stops at the bundled checkpoint's own step
        assert extra["bundled_from"].endswith(f"/step-{extra['training_step']:07d}")
        assert not any("--resume" in c for c in extra["training_commands"])
        assert f"--max-steps {extra['training_step']} " in extra["training_command"] + " "


def test_bundle_script_makes_recorded_paths_portable(tmp_path):
    script = _bundle_script()
    runs = tmp_path / "runs"
    copy = tmp_path / "elsewhere" / "mnist-dit-step5500"  # a bundled copy outside the runs folder
    copy.mkdir(parents=True)
    (copy / "config.json").write_text(json.dumps({"extra": {"bundled_from": "runs/a/checkpoints/step-0005500"}}))
    command = (f"ditkit train --data mnist --init-from {runs}/a/checkpoints/step-0003000 --out {runs}/b "
               "--resume latest")
    assert script.portable_command(command, runs) == (
        "ditkit train --data mnist --init-from runs/a/checkpoints/step-0003000 --out runs/b --resume latest")
    assert script.portable_path(str(copy), runs) == "runs/a/checkpoints/step-0005500"
    assert script.portable_path(str(checkpoints.BUNDLED_MODELS_DIR / "mnist-dit"), runs) == "mnist-dit"
    assert script.portable_path("mnist-dit", runs) == "mnist-dit"


def test_bundle_script_replays_a_resumed_chain_to_the_same_weights(tmp_path, monkeypatch):
    """The recorded chain, replayed in a fresh folder, gives the bundled weights bit for bit: a run stopped,
    resumed past the step its successor starts from, then fine-tuned from that step."""
    import shlex
    import sys

    from safetensors.torch import load_file

    script = _bundle_script()
    tiny = ("--data shapes --image-size 16 --depth 1 --hidden-size 32 --num-heads 2 --patch-size 4 "
            "--global-batch-size 4 --ckpt-every 1 --threads 1 --no-progress")

    def train(command):
        argv = shlex.split(command)
        monkeypatch.setattr(sys, "argv", argv)  # the run folder records the command line it was given
        assert main(argv[1:]) == 0

    def weights(folder, step):
        return load_file(str(folder / "runs" / "b" / "checkpoints" / f"step-{step:07d}" / "model.safetensors"))

    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    train(f"ditkit train {tiny} --max-steps 2 --seed 0 --out runs/a")
    train(f"ditkit train {tiny} --max-steps 4 --seed 0 --out runs/a --resume latest")  # on past the fork
    train(f"ditkit train {tiny} --max-steps 2 --seed 1 --out runs/b --init-from runs/a/checkpoints/step-0000003")
    record = json.loads(Path("runs/b/train_config.json").read_text())
    as_run = script.command_history(record)
    assert "--resume latest" in as_run[0]
    replay = script.replay_commands(as_run, final_step=2)
    assert "--resume" not in replay[0] and "--max-steps 3" in replay[0]

    (tmp_path / "fresh").mkdir()
    monkeypatch.chdir(tmp_path / "fresh")
    for command in replay:
        train(command)
    original, replayed = weights(tmp_path / "first", 2), weights(tmp_path / "fresh", 2)
    assert original.keys() == replayed.keys()
    assert all(torch.equal(original[k], replayed[k]) for k in original)
    (tmp_path / "empty").mkdir()  # the chain as typed would not replay: its first command resumes
    monkeypatch.chdir(tmp_path / "empty")
    assert main(shlex.split(as_run[0])[1:]) != 0


def test_bundle_script_packages_a_unidiffuser_run_with_its_chain_and_scores(tmp_path, monkeypatch):
    """Stage 1 (caption decoder) then stage 2 (U-ViT --init-from it), bundled: the folder loads by path, the
    record names both commands (replayable, no absolute paths) and the uni-eval scores."""
    import shlex
    import sys

    from ditkit.pipelines.unidiffuser import UniDiffuser

    script = _bundle_script()
    common = ("--data shapes --image-size 16 --text-encoder chars --global-batch-size 4 --ckpt-every 2 "
              "--threads 1 --seed 0 --no-progress --sample-every 0")

    def train(command):
        argv = shlex.split(command)
        monkeypatch.setattr(sys, "argv", argv)
        assert main(argv[1:]) == 0

    monkeypatch.chdir(tmp_path)
    train(f"ditkit train {common} --model caption-decoder --hidden-size 32 --depth 1 --num-heads 2 --max-steps 2 "
          "--out runs/dec")
    train(f"ditkit train {common} --model uvit-tiny --hidden-size 32 --depth 2 --num-heads 2 --patch-size 4 "
          "--max-steps 2 --init-from runs/dec/checkpoints/step-0000002 --out runs/uni")
    dest = tmp_path / "bundled" / "tiny-uni"
    monkeypatch.setattr(sys, "argv", ["bundle_model.py", "--run", "runs/uni", "--dest", str(dest), "--uni-samples", "2"])
    script.main()
    config = json.loads((dest / "config.json").read_text())
    assert config["format"] == "ditkit-unidiffuser" and config["text_encoder"]["spec"] == "chars"
    extra = config["extra"]
    assert [c.split("--out ")[1].split()[0] for c in extra["training_commands"]] == ["runs/dec", "runs/uni"]
    assert "--init-from runs/dec/checkpoints/step-0000002" in extra["training_command"]
    assert not any(a.startswith("/") for c in extra["training_commands"] for a in c.split())
    scores = extra["evaluation"]["metrics"]
    assert set(scores) == {"t2i", "i2t", "joint"}
    assert extra["evaluation"]["commands"] == ["ditkit uni-eval --checkpoint tiny-uni --num-samples 2 --seed 0 "
                                               "--precision fp32 --out bundled-eval/metrics.json"]  # any CPU
    assert UniDiffuser.load(dest) is not None
