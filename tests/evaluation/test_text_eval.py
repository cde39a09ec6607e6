"""The bundled shapes attribute classifier and the text-to-image attribute scores."""

import os

import torch

from ditkit.data.captions import Scene, ShapeObject
from ditkit.evaluation.attributes import bundled_path, load_attribute_classifier, read_scenes, score_images, score_scenes
from ditkit.evaluation.train_attributes import main as train_main
from ditkit.evaluation.train_attributes import render_split
from ditkit.imaging import from_uint8


def test_bundled_classifier_reads_real_scenes_at_97_percent_per_attribute():
    assert os.path.getsize(bundled_path()) < 2_000_000
    classifier = load_attribute_classifier()
    for split in ("test", "heldout"):  # seen combinations, and the held-out colour-shape pairs
        images, scenes = render_split(split, 0, 500)
        report = score_images(from_uint8(images), scenes, classifier)
        assert report["all"]["count_prompts"] == 500
        for attribute in ("count", "shape", "colour", "size", "position", "relation", "relation_axis", "all_correct"):
            assert report["all"][attribute] >= 0.97, (split, attribute, report["all"])
        assert report["held_out" if split == "heldout" else "seen"]["count_prompts"] == 500


def test_scores_compare_what_is_seen_with_what_was_asked():
    red_circle = ShapeObject("circle", "red", "large", 0)
    blue_square = ShapeObject("square", "blue", "small", 2)
    one = Scene((red_circle,))
    pair = Scene((red_circle, blue_square), "left of")
    held = Scene((ShapeObject("triangle", "red", "small", 4),))  # a held-out pair
    seen = [
        [red_circle],                                          # exact
        [ShapeObject("circle", "green", "large", 0)],          # wrong colour
        [ShapeObject("circle", "red", "large", 1)],            # wrong place
        [],                                                    # nothing drawn
        [blue_square, red_circle],                               # the pair, found in either order
        [ShapeObject("circle", "red", "large", 2), ShapeObject("square", "blue", "small", 0)],  # relation reversed
        [ShapeObject("triangle", "red", "small", 4)],
    ]
    targets = [one, one, one, one, pair, pair, held]
    report = score_scenes(seen, targets)
    assert report["seen"]["count_prompts"] == 6 and report["held_out"]["count_prompts"] == 1
    s = report["seen"]
    assert s["colour"] == 4 / 6 and s["position"] == 2 / 4 and s["relation"] == 1 / 2 and s["count"] == 5 / 6
    assert s["all_correct"] == 2 / 6
    assert report["held_out"]["all_correct"] == 1.0


def test_relation_axis_says_whether_the_pair_is_on_the_asked_line():
    red_circle, blue_square = ShapeObject("circle", "red", "large", 0), ShapeObject("square", "blue", "small", 2)
    left_of = Scene((red_circle, blue_square), "left of")
    seen = [
        [red_circle, blue_square],                                     # one row, in order: both right
        [red_circle, ShapeObject("square", "blue", "small", 4)],       # diagonal: the order holds, the axis not
        [red_circle, ShapeObject("square", "blue", "small", 3)],       # one column: neither
        [ShapeObject("circle", "red", "large", 2), ShapeObject("square", "blue", "small", 0)],  # reversed, on axis
    ]
    scores = [score_scenes([objects], [left_of])["all"] for objects in seen]
    assert [(s["relation"], s["relation_axis"]) for s in scores] == [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 1.0)]
    # a diagnostic, not an attribute: all-correct follows the relation alone
    assert [s["all_correct"] for s in scores] == [1.0, 1.0, 0.0, 0.0]
    one = score_scenes([[red_circle]], [Scene((red_circle,))])["all"]
    assert one["relation_axis"] is None and one["all_correct"] == 1.0


def test_training_script_writes_a_loadable_classifier(tmp_path):
    out = tmp_path / "attrs"
    assert train_main(["--train-images", "128", "--heldout-images", "64", "--epochs", "1", "--out", str(out)]) == 0
    classifier = load_attribute_classifier(str(out) + ".safetensors")
    images, scenes = render_split("test", 0, 4)
    found = read_scenes(classifier, from_uint8(images))
    assert len(found) == 4 and all(isinstance(objs, list) for objs in found)
    assert torch.is_tensor(next(classifier.parameters()))


def test_clip_score_on_a_tiny_local_clip(tmp_path, monkeypatch):
    import json

    import numpy as np
    import pytest
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from ditkit.errors import DitkitError
    from ditkit.evaluation.clip_score import ClipScorer
    from tests.codecs.test_text_codec import _bytes_to_unicode

    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(tmp_path)
    torch.manual_seed(0)
    special = dict(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                   pad_token_id=vocab["<|endoftext|>"])
    config = CLIPConfig(projection_dim=16, text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                                            num_hidden_layers=1, num_attention_heads=2, **special),
                        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=32, patch_size=8))
    CLIPModel(config).save_pretrained(tmp_path)

    scorer = ClipScorer(str(tmp_path))
    pictures = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    prompts = ["a red circle", "a blue star on the left", "two"]
    scores = scorer(pictures, prompts, batch_size=2)
    for i in range(3):  # each pair on its own, through CLIP's own similarity logits
        batch = scorer.processor(text=[prompts[i]], images=[pictures[i]], return_tensors="pt", padding=True)
        with torch.no_grad():
            logit = scorer.model(**batch).logits_per_image[0, 0] / scorer.model.logit_scale.exp()
        assert abs(float(scores[i]) - 100 * max(float(logit), 0.0)) < 1e-3
    with pytest.raises(DitkitError, match="3 images for 2 prompts"):
        scorer(pictures, prompts[:2])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    with pytest.raises(DitkitError, match="hub is unreachable"):
        ClipScorer()
