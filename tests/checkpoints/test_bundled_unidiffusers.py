"""The bundled UniDiffusers (issue 31; ``mnist-uni``, and every other one bundled): each loads by name and every one
of the seven modes runs through ``ditkit uni`` at a few steps, from a prompt or an image file of its own data; its
config records both training stages and its uni-eval scores."""

import json

import numpy as np
import pytest
from PIL import Image

from ditkit.checkpoints import bundled_models
from ditkit.checkpoints.unidiffuser import UNI_FORMAT, read_unidiffuser_config
from ditkit.cli import main
from ditkit.diffusion.unidiffuser import MODES
from ditkit.evaluation.unidiffuser_eval import checkpoint_data, scoring_for
from ditkit.imaging import to_uint8
from ditkit.pipelines.unidiffuser import MODE_INPUTS

IMAGE_MODES = {"t2i", "joint", "i", "i2t2i"}  # what each mode makes (the variations also keep their middle step)
TEXT_MODES = {"i2t", "joint", "t", "t2i2t"}
BUNDLED = sorted(name for name, path in bundled_models().items()
                 if json.loads((path / "config.json").read_text()).get("format") == UNI_FORMAT)


def test_mnist_uni_is_bundled():
    assert "mnist-uni" in BUNDLED


@pytest.fixture(scope="module", params=BUNDLED)
def bundled(request, tmp_path_factory):
    """(name, config, a test caption of its data, a test image of its data as a user's PNG file)."""
    name = request.param
    config = read_unidiffuser_config(name)
    captions, _, item = scoring_for(checkpoint_data(config)).test_items(8, config["image_size"], "test")
    path = tmp_path_factory.mktemp(name) / "input.png"
    pixels = to_uint8(item(7))
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
    return name, config, captions[3], str(path)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_of_each_bundled_model_runs_from_the_cli(bundled, mode, tmp_path, capsys):
    name, config, prompt, image = bundled
    needs = MODE_INPUTS[mode]
    given = ["--prompt", prompt] if needs == "prompts" else ["--image", image] if needs else []
    out = tmp_path / mode
    code = main(["uni", mode, "--checkpoint", name, *given, "-n", "2", "--steps", "3", "--beam-size", "1",
                 "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == mode
    pngs = sorted(out.glob("[0-9]*.png"))
    if mode in IMAGE_MODES:
        assert len(pngs) == 2
        assert np.asarray(Image.open(pngs[0])).shape[:2] == (config["image_size"],) * 2
    elif mode in ("i2t", "t"):
        assert not pngs
    captions = out / "captions.txt"
    assert captions.is_file() or mode not in TEXT_MODES
    if mode in ("t2i", "i"):
        assert not captions.is_file()
    if mode in TEXT_MODES:
        lines = captions.read_text().splitlines()  # at 3 steps a caption may be empty, never foreign words
        vocab = set(config["caption_decoder"]["vocab"])
        assert len(lines) == 2 and all(set(line.split()) <= vocab for line in lines)


def test_each_bundled_config_records_its_training_and_scores(bundled):
    name, config, _, _ = bundled
    extra = config["extra"]
    data = extra["training_data"]["name"]
    commands = extra["training_commands"]
    assert len(commands) == 2 and "--model caption-decoder" in commands[0] and "--init-from" in commands[1]
    assert all(c.startswith(f"ditkit train --data {data}") for c in commands)
    metrics = extra["evaluation"]["metrics"]
    assert set(metrics) == {"t2i", "i2t", "joint"}
    assert metrics["t2i"]["all"]["count_prompts"] >= 500 and metrics["joint"]["all"]["count_pairs"] >= 500
