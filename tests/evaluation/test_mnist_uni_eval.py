"""uni-eval on the captioned MNIST digits: digit captions read back (every template; shuffled ones do not
match), the bundled classifier reading real digits through the scoring path, and ``ditkit uni-eval`` on a
tiny mnist UniDiffuser trained by ``ditkit train`` (the data is taken from what the checkpoint records)."""

import json

import pytest
import torch

from ditkit.data.captions import DIGIT_TEMPLATES, CaptionedDigits, digit_caption
from ditkit.errors import DitkitError
from ditkit.evaluation.digit_scoring import (digit_test_items, load_digit_classifier, parse_digit_caption,
                                             read_digits, score_digit_agreement, score_digit_captions,
                                             score_digit_images)
from ditkit.evaluation.unidiffuser_eval import SCORINGS, checkpoint_data, scoring_for

N = 60


@pytest.fixture(scope="module")
def digits():
    captions, labels, image = digit_test_items(N, 32)
    return captions, labels, torch.stack([image(i) for i in range(N)])


def _shuffled(items):
    return items[7:] + items[:7]


def test_every_template_of_every_digit_parses_back_to_its_digit():
    for digit in range(10):
        for template in range(len(DIGIT_TEMPLATES)):
            caption = digit_caption(digit, template)
            assert parse_digit_caption(caption) == digit
            assert parse_digit_caption(f"  {caption.upper()}. ") == digit  # case, spacing, a full stop
    for other in ("a handwritten", "the digit 12", "a seven seven", "the number 7", "a large red circle", "", "7"):
        assert parse_digit_caption(other) is None


def test_true_captions_score_100_and_shuffled_ones_do_not(digits):
    captions, labels, _ = digits
    assert len(set(captions)) == 40 and set(labels) == set(range(10))  # every digit, in every template
    perfect = score_digit_captions(captions, labels)["all"]
    assert perfect == {"accuracy": 1.0, "min_digit": 1.0, "count_prompts": N, "parsed": 1.0}
    shuffled = score_digit_captions(_shuffled(captions), labels)["all"]
    assert shuffled["parsed"] == 1.0 and shuffled["accuracy"] < 0.3
    garbage = score_digit_captions(["seven the digit"] * N, labels)["all"]
    assert garbage["parsed"] == 0.0 and garbage["accuracy"] == 0.0  # unparseable = wrong


def test_joint_agreement_and_which_digits_were_drawn(digits):
    captions, labels, _ = digits
    score = score_digit_agreement(labels, captions)
    assert score["all"]["agreement"] == 1.0 and score["all"]["parsed"] == 1.0
    assert sum(score["digit_share"].values()) == pytest.approx(1.0)
    assert score_digit_agreement(labels, _shuffled(captions))["all"]["agreement"] < 0.3
    half = captions[:N // 2] + ["no caption here"] * (N - N // 2)
    assert score_digit_agreement(labels, half)["all"] == {"agreement": 0.5, "parsed": 0.5, "count_pairs": N}
    with pytest.raises(DitkitError, match="3 images for 2 captions"):
        score_digit_agreement(labels[:3], captions[:2])


def test_the_bundled_classifier_reads_real_test_digits(digits):
    _, labels, images = digits  # (N, 1, 32, 32) in [-1, 1], as generated images are
    seen = read_digits(load_digit_classifier(), images)
    score = score_digit_images(seen, labels)["all"]
    assert score["accuracy"] >= 0.95 and score["count_prompts"] == N
    wrong = score_digit_images([(d + 1) % 10 for d in labels], labels)["all"]
    assert wrong["accuracy"] == 0.0 and wrong["min_digit"] == 0.0


def test_the_scoring_follows_the_checkpoints_training_data():
    assert set(SCORINGS) >= {"shapes", "mnist"}
    assert checkpoint_data({"extra": {"training_data": {"name": "mnist"}}}) == "mnist"
    assert checkpoint_data({"extra": {"train_config": {"data": "mnist"}}}) == "mnist"
    assert checkpoint_data({"extra": {}}) is None and scoring_for(None).data == "shapes"
    with pytest.raises(DitkitError, match="cannot score a model trained on 'path/to/pets'"):
        scoring_for("path/to/pets")


@pytest.fixture(scope="module")
def tiny_mnist_uni(tmp_path_factory):
    """A 1-step U-ViT trained by ``ditkit train --data mnist`` (its checkpoint records the data)."""
    from ditkit.cli import main

    out = tmp_path_factory.mktemp("mnist-uni") / "run"
    assert main(["train", "--data", "mnist", "--image-size", "16", "--model", "uvit-tiny", "--text-encoder", "chars",
                 "--hidden-size", "32", "--depth", "2", "--num-heads", "2", "--patch-size", "4", "--max-steps", "1",
                 "--global-batch-size", "4", "--sample-every", "0", "--threads", "1", "--no-progress",
                 "--out", str(out)]) == 0
    return str(out / "checkpoints" / "step-0000001")


def test_uni_eval_scores_a_tiny_mnist_checkpoint_through_the_cli(tiny_mnist_uni, tmp_path, capsys):
    from ditkit.cli import main

    out = tmp_path / "scores.json"
    assert main(["uni-eval", "--checkpoint", tiny_mnist_uni, "-n", "3", "--steps", "2", "--batch-size", "2",
                 "--beam-size", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == ["t2i", "i2t", "joint"]
    assert printed[0].startswith("t2i: accuracy ") and printed[1].startswith("i2t: accuracy ")
    assert printed[2].startswith("joint: agreement ")
    record = json.loads(out.read_text())
    assert record["data"] == "mnist" and set(record["scores"]) == {"t2i", "i2t", "joint"}
    assert record["scores"]["i2t"]["all"]["count_prompts"] == 3 and len(record["scores"]["joint"]["examples"]) == 3
    assert [e["true"] for e in record["scores"]["i2t"]["examples"]] == digit_test_items(3, 16)[0]
    assert main(["uni-eval", "--checkpoint", tiny_mnist_uni, "-n", "1", "--data", "pets"]) == 2
    err = capsys.readouterr().err
    assert "cannot score a model trained on 'pets'" in err and err.count("\n") == 1
