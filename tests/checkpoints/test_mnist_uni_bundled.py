"""The bundled ``mnist-uni`` (issue 31): it loads by name and every one of the seven modes runs through
``ditkit uni`` at a few steps; its config records both training stages and its uni-eval scores."""

import json

import numpy as np
import pytest
from PIL import Image

from ditkit.checkpoints.unidiffuser import read_unidiffuser_config
from ditkit.cli import main
from ditkit.diffusion.unidiffuser import MODES
from ditkit.evaluation.digit_scoring import digit_test_items
from ditkit.imaging import to_uint8
from ditkit.pipelines.unidiffuser import MODE_INPUTS

IMAGE_MODES = {"t2i", "joint", "i", "i2t2i"}  # what each mode makes (the variations also keep their middle step)
TEXT_MODES = {"i2t", "joint", "t", "t2i2t"}


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory):
    _, _, item = digit_test_items(8, 32)
    path = tmp_path_factory.mktemp("digit") / "seven.png"
    Image.fromarray(to_uint8(item(7))[..., 0]).save(path)  # a grey 32x32 seven, as a user's file
    return str(path)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_of_the_bundled_model_runs_from_the_cli(mode, digit_png, tmp_path, capsys):
    needs = MODE_INPUTS[mode]
    given = ["--prompt", "a handwritten three"] if needs == "prompts" else ["--image", digit_png] if needs else []
    out = tmp_path / mode
    code = main(["uni", mode, "--checkpoint", "mnist-uni", *given, "-n", "2", "--steps", "3", "--beam-size", "1",
                 "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["mode"] == mode
    pngs = sorted(out.glob("[0-9]*.png"))
    if mode in IMAGE_MODES:
        assert len(pngs) == 2
        image = np.asarray(Image.open(pngs[0]))
        assert image.shape[:2] == (32, 32)
    elif mode in ("i2t", "t"):
        assert not pngs
    captions = out / "captions.txt"
    assert captions.is_file() or mode not in TEXT_MODES
    if mode in ("t2i", "i"):
        assert not captions.is_file()
    if mode in TEXT_MODES:
        lines = captions.read_text().splitlines()  # at 3 steps a caption may be empty, never foreign words
        vocab = set(read_unidiffuser_config("mnist-uni")["caption_decoder"]["vocab"])
        assert len(lines) == 2 and all(set(line.split()) <= vocab for line in lines)


def test_the_bundled_config_records_its_training_and_scores():
    config = read_unidiffuser_config("mnist-uni")
    extra = config["extra"]
    assert extra["training_data"]["name"] == "mnist"
    commands = extra["training_commands"]
    assert len(commands) == 2 and "--model caption-decoder" in commands[0] and "--init-from" in commands[1]
    assert all(c.startswith("ditkit train --data mnist") for c in commands)
    metrics = extra["evaluation"]["metrics"]
    assert set(metrics) == {"t2i", "i2t", "joint"}
    assert metrics["t2i"]["all"]["count_prompts"] >= 500 and metrics["joint"]["all"]["count_pairs"] >= 500
