"""The model shipped in the package: small, self-describing, and good enough to recognise its digits."""

import json
import subprocess
import sys

import numpy as np
import pytest
from ditkit.checkpoints import bundled_models, load_checkpoint
from ditkit.evaluation import evaluate
from ditkit.evaluation.sources import ImageSet
from ditkit.pipelines import default_checkpoint, generate, load_codec, load_for_sampling


# (name, data, channels, the class accuracy it must reach): the time-to-quality issue's acceptance — mnist-dit at
# least the old model's 98.5%, shapes-dit 95% (docs/models.md: 99.1% and 98.6% at bundling).
BUNDLED = [("mnist-dit", "mnist", 1, 0.985), ("shapes-dit", "shapes", 3, 0.95)]


@pytest.mark.parametrize("name, data, channels, target", BUNDLED)
def test_bundled_model_is_small_and_records_how_it_was_made(name, data, channels, target):
    folder = bundled_models()[name]
    assert (folder / "model.safetensors").stat().st_size <= 10 * 2**20
    config = json.loads((folder / "config.json").read_text())
    extra = config["extra"]
    assert extra["training_command"].startswith(f"ditkit train --data {data} ")
    assert extra["training_step"] > 0 and extra["training_data"]["name"] == data
    assert config["codec"] == {"type": "pixel", "channels": channels}
    loaded = load_checkpoint(name)
    assert loaded.model.config.num_classes == 10 and loaded.model.null_class == 10
    assert loaded.model.config.in_channels == channels


@pytest.mark.parametrize("name, data, channels, target", BUNDLED)
def test_bundled_model_recorded_accuracy_meets_the_target(name, data, channels, target):
    """The figure in docs/models.md, measured at bundling on 1,000 samples (examples/bundle_model.py)."""
    evaluation = json.loads((bundled_models()[name] / "config.json").read_text())["extra"]["evaluation"]
    assert evaluation["extractor"] == f"classifier:{data}"
    assert evaluation["metrics"]["class_accuracy"] >= target


@pytest.mark.slow  # 200 samples of each bundled model, scored (~55 s each on 2 busy cores)
@pytest.mark.parametrize("name, data, channels, target", BUNDLED)
def test_bundled_model_draws_the_class_it_is_asked_for(name, data, channels, target):
    """200 fresh samples (20 per class) at DPM-Solver++ 20 steps and cfg 4, seeds unlike the bundling run's:
    the bundled classifier must recognise most of them (within 10 points of the 1,000-sample target)."""
    loaded = load_for_sampling(name)
    samples = generate(loaded.model, num_samples=200, codec=load_codec(loaded, None), sampler="dpm++", steps=20,
                       cfg_scale=4, seed=123, batch_size=200, diffusion_config=loaded.diffusion_config,
                       progress=False)
    report = evaluate(ImageSet(samples.images, np.asarray(samples.labels), name), f"{data}:test", progress=False)
    assert report["metrics"]["class_accuracy"] >= target - 0.1, report["metrics"]


@pytest.mark.slow  # the bundled model end to end through the CLI (~17 s)
def test_default_sample_command_uses_the_bundled_model(tmp_path):
    """`ditkit sample` with no checkpoint: the bundled model, scored by the bundled classifier.

    The quality claim lives in docs/models.md and in the model's config.json (1,000 samples, measured by
    examples/bundle_model.py); here: the default path works end to end and is reproducible.
    """
    out = tmp_path / "samples"
    classes = ",".join(str(d) for d in range(10) for _ in range(2))
    argv = [sys.executable, "-m", "ditkit", "sample", "--classes", classes, "--cfg-scale", "4", "--sampler", "dpm++",
            "--steps", "10", "--seed", "7", "--npz"]
    result = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["checkpoint"] == str(default_checkpoint().resolve()) and run["settings"]["seed"] == 7
    data = np.load(out / "samples.npz")
    assert data["arr_0"].shape == (20, 32, 32, 3) and list(data["labels"]) == [d for d in range(10) for _ in range(2)]
    with pytest.warns(UserWarning, match="unreliable"):  # 20 samples < 128 feature dims: FID is flagged
        report = evaluate(str(out / "samples.npz"), "mnist:test", progress=False)
    assert report["extractor"].startswith("classifier") and 0.0 <= report["metrics"]["class_accuracy"] <= 1.0
    again = tmp_path / "again"
    assert subprocess.run([*argv, "--out", str(again)], capture_output=True).returncode == 0
    assert (out / "grid.png").read_bytes() == (again / "grid.png").read_bytes()


# --------------------------------------------------------------------------------------------
# shapes-t2i: the bundled text-to-image model
# --------------------------------------------------------------------------------------------

T2I_ATTRIBUTES = ("count", "shape", "colour", "size", "position", "relation")
# What docs/text-to-image.md states for shapes-t2i (1,000 test prompts, measured at bundling). It meets the bar
# on colour, count and position but not yet on shape, size, relation (it ignores relation words) or all-correct.
T2I_RECORDED_FLOORS = {"count": 0.9, "shape": 0.85, "colour": 0.95, "size": 0.85, "position": 0.95, "relation": 0.3,
                       "all_correct": 0.55}


def test_bundled_text_model_is_small_and_records_how_it_was_made():
    folder = bundled_models()["shapes-t2i"]
    assert (folder / "model.safetensors").stat().st_size <= 20 * 2**20
    config = json.loads((folder / "config.json").read_text())
    extra = config["extra"]
    assert extra["training_command"].startswith("ditkit train --data shapes --text-encoder minilm ")
    assert "/work/" not in json.dumps(extra) and "/root/" not in json.dumps(extra)  # replayable elsewhere
    assert extra["trained_on"]["device"].startswith("cuda") and extra["train_config"]["global_batch_size"] == 256
    assert extra["text_encoder"]["spec"] == "minilm" and config["model"]["block"] == "cross-text"
    loaded = load_checkpoint("shapes-t2i")
    assert loaded.model.config.num_classes == 0 and loaded.model.config.text_dim == 384


def test_bundled_text_model_recorded_scores_are_the_readmes():
    """The figures in docs/text-to-image.md, measured at bundling (`ditkit t2i-eval`, 1,000 test + 500 held-out
    prompts)."""
    evaluation = json.loads((bundled_models()["shapes-t2i"] / "config.json").read_text())["extra"]["evaluation"]
    seen = evaluation["metrics"]["seen"]
    assert seen["count_prompts"] == 1000 and evaluation["metrics"]["held_out"]["count_prompts"] == 500
    assert all(seen[k] >= floor for k, floor in T2I_RECORDED_FLOORS.items()), seen
    # docs/text-to-image.md's diagnosis: the pair lands on the asked row / column about as often as on the other one
    assert 0.4 <= seen["relation_axis"] <= 0.5 and 0.4 <= evaluation["metrics"]["held_out"]["relation_axis"] <= 0.5


@pytest.mark.slow  # 64 prompts through the bundled text model, scored (~200 s on 2 busy cores)
def test_bundled_text_model_draws_what_the_prompt_says():
    """64 fresh test prompts (items the bundling run did not use) and a new seed, through the library path:
    the attribute classifier must read the prompt back, within 10 points of the recorded floors (relation
    aside: the model does not follow it, and 32 pair prompts cannot tell 0.3 from chance)."""
    from ditkit.data.captions import ComposedShapesDataset
    from ditkit.evaluation.attributes import score_images
    from ditkit.imaging import from_uint8
    from ditkit.pipelines.text import load_text_codec

    test = ComposedShapesDataset(32, "test")
    items = range(1000, 1064)
    loaded = load_for_sampling("shapes-t2i")
    out = generate(loaded.model, prompts=[test.caption(i) for i in items], cfg_scale=4, sampler="dpm++", steps=20,
                   seed=321, batch_size=64, codec=load_codec(loaded, None), progress=False,
                   text_codec=load_text_codec(loaded.text_encoder_config, loaded.model),
                   diffusion_config=loaded.diffusion_config)
    seen = score_images(from_uint8(out.images), [test.scene(i) for i in items])["seen"]
    floors = {k: v - 0.1 for k, v in T2I_RECORDED_FLOORS.items() if k != "relation"}
    assert all(seen[k] >= floor for k, floor in floors.items()), seen
