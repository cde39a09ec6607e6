"""UniDiffuser evaluation on the captioned shapes: the scoring on known inputs (true captions score 100%,
shuffled ones low), and each mode end to end on a tiny model, also through ``ditkit uni-eval``."""

import json

import pytest
import torch
from torch import nn

from ditkit.data.captions import COLOUR_NAMES, SHAPES, SIZES, ComposedShapesDataset, ShapeObject
from ditkit.errors import DitkitError
from ditkit.evaluation.attributes import score_scenes
from ditkit.evaluation.unidiffuser_eval import (evaluate_i2t, evaluate_joint, evaluate_t2i, evaluate_unidiffuser,
                                                score_agreement, score_captions)

N = 60


@pytest.fixture(scope="module")
def scenes():
    data = ComposedShapesDataset(image_size=16, split="test", length=N)
    return [data.scene(i) for i in range(N)], [data.caption(i) for i in range(N)]


def _shuffled(items):
    return items[7:] + items[:7]


def test_true_captions_score_every_attribute_and_shuffled_ones_score_low(scenes):
    targets, captions = scenes
    perfect = score_captions(captions, targets)["all"]
    assert perfect["parsed"] == 1.0 and perfect["all_correct"] == 1.0 and perfect["min_attribute"] == 1.0
    assert all(perfect[k] == 1.0 for k in ("count", "shape", "colour", "size", "position", "relation"))
    # every template parses: the same scenes in other words still score 100%
    assert score_captions([t.caption(1) for t in targets], targets)["all"]["all_correct"] == 1.0
    shuffled = score_captions(_shuffled(captions), targets)["all"]
    assert shuffled["all_correct"] < 0.1 and shuffled["colour"] < 0.4 and shuffled["min_attribute"] < 0.4
    garbage = score_captions(["cross cross there"] * N, targets)["all"]
    assert garbage["parsed"] == 0.0 and garbage["all_correct"] == 0.0 and garbage["count"] == 0.0


def test_joint_agreement_of_images_and_their_captions(scenes):
    targets, captions = scenes
    seen = [list(t.objects) for t in targets]  # an image showing exactly its scene
    assert score_agreement(seen, captions)["all"]["agreement"] == 1.0
    assert score_agreement(seen, _shuffled(captions))["all"]["agreement"] < 0.1
    half = captions[:N // 2] + ["no caption here"] * (N - N // 2)  # unparseable captions disagree
    score = score_agreement(seen, half)["all"]
    assert score["parsed"] == 0.5 and score["all_correct"] == 1.0 and score["agreement"] == 0.5
    with pytest.raises(DitkitError, match="3 images for 2 captions"):
        score_agreement(seen[:3], captions[:2])


class ConstantClassifier(nn.Module):
    """Sees one large red circle in the centre cell of every image."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        n = len(images)
        logits = {"shape": torch.zeros(n, 9, len(SHAPES) + 1), "colour": torch.zeros(n, 9, len(COLOUR_NAMES)),
                  "size": torch.zeros(n, 9, len(SIZES))}
        logits["shape"][:, :, 0] = 1  # empty cells ...
        logits["shape"][:, 4, 0], logits["shape"][:, 4, 1 + SHAPES.index("circle")] = 0, 1  # ... but the centre
        logits["colour"][:, 4, COLOUR_NAMES.index("red")] = 1
        logits["size"][:, 4, SIZES.index("large")] = 1
        return logits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    captions = [ComposedShapesDataset(16, "train", length=200).caption(i) for i in range(200)]
    uni = UniDiffuser.build(image_size=16, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8, patch_size=4),
                            text_encoder={"type": "text", "spec": "chars", "max_length": 24}, image_encoder="pooled:2",
                            vocab=build_vocab(captions), decoder=dict(width=32, depth=1, heads=2)).eval()
    path = tmp_path_factory.mktemp("uni") / "tiny"
    uni.save(path)
    return uni, str(path)


def test_each_mode_end_to_end_on_a_tiny_model(tiny, scenes):
    uni, _ = tiny
    targets = scenes[0][:6]
    settings = dict(steps=2, batch_size=4, beam_size=1)
    t2i = evaluate_t2i(uni, 6, classifier=ConstantClassifier(), **settings)
    expected = score_scenes([[ShapeObject("circle", "red", "large", 4)]] * 6, targets)["all"]  # what it always sees
    assert {k: v for k, v in t2i["all"].items() if k not in ("min_attribute", "mean_attribute")} == expected
    i2t = evaluate_i2t(uni, 6, **settings)
    assert i2t["all"]["count_prompts"] == 6 and len(i2t["examples"]) == 6
    assert i2t["examples"][0]["true"] == scenes[1][0]
    joint = evaluate_joint(uni, 6, classifier=ConstantClassifier(), **settings)
    assert 0.0 <= joint["all"]["agreement"] <= joint["all"]["parsed"] <= 1.0 and len(joint["examples"]) == 6
    again = evaluate_joint(uni, 6, classifier=ConstantClassifier(), **settings)
    assert again["examples"] == joint["examples"]  # seeded
    with pytest.raises(DitkitError, match="no evaluation for mode 'i2t2i'"):
        evaluate_unidiffuser(uni, ["i2t2i"], 2)


def test_uni_eval_cli_writes_scores(tiny, tmp_path, capsys):
    from ditkit.cli import main
    from ditkit.evaluation.attributes import AttributeClassifier
    from ditkit.evaluation.train_attributes import save_classifier

    _, path = tiny
    torch.manual_seed(0)
    save_classifier(AttributeClassifier().eval(), str(tmp_path / "clf"), {})
    out = tmp_path / "scores.json"
    assert main(["uni-eval", "--checkpoint", path, "-n", "3", "--steps", "2", "--batch-size", "3", "--beam-size", "1",
                 "--classifier", str(tmp_path / "clf.safetensors"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("t2i: min_attribute") and "\njoint: agreement" in printed
    record = json.loads(out.read_text())
    assert set(record["scores"]) == {"t2i", "i2t", "joint"} and record["settings"]["num_samples"] == 3
    assert main(["uni-eval", "--checkpoint", path, "-n", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
