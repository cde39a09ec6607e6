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
        for attribute in ("count", "shape", "colour", "size", "position", "relation", "all_correct"):
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


def test_training_script_writes_a_loadable_classifier(tmp_path):
    out = tmp_path / "attrs"
    assert train_main(["--train-images", "128", "--heldout-images", "64", "--epochs", "1", "--out", str(out)]) == 0
    classifier = load_attribute_classifier(str(out) + ".safetensors")
    images, scenes = render_split("test", 0, 4)
    found = read_scenes(classifier, from_uint8(images))
    assert len(found) == 4 and all(isinstance(objs, list) for objs in found)
    assert torch.is_tensor(next(classifier.parameters()))
