"""Captioned data: compositional shapes, captioned MNIST, captioned folders (text-to-image)."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from ditkit.data.captions import (
    COLOUR_NAMES, HELD_OUT_PAIRS, POSITION_PHRASES, SHAPES, SIZES, CaptionedDigits, CaptionedFolder,
    ComposedShapesDataset, load_captioned_dataset,
)
from ditkit.data.shapes import ShapesDataset
from ditkit.errors import DitkitError


def test_plain_shapes_images_unchanged_by_the_shared_drawing_code():
    # Pinned before data/shapes.py was refactored to share its drawing code with the captioned scenes.
    h = hashlib.sha256()
    for split, size in (("train", 16), ("train", 32), ("test", 32), ("train", 64)):
        data = ShapesDataset(size, split)
        for i in range(50):
            h.update(data.render(i).tobytes())
    assert h.hexdigest() == "eeace49e6a76c343eb5ba1b17ec14a7fa718aab368631fb152c10a41d44473c6"


def test_composed_shapes_are_deterministic_and_captions_follow_the_attributes():
    a, b = ComposedShapesDataset(32, "train"), ComposedShapesDataset(32, "train")
    for i in range(20):
        assert np.array_equal(a.render(i), b.render(i)) and a.caption(i) == b.caption(i)
        scene, caption = a.scene(i), a.caption(i)
        for obj in scene.objects:
            assert obj.phrase() in caption
        if scene.relation is None:
            assert POSITION_PHRASES[scene.objects[0].cell].lower() in caption.lower()
        else:
            assert f" {scene.relation} a " in caption
    item = a[3]
    image, caption = item["x"], item["caption"]
    assert image.shape == (3, 32, 32) and image.min() >= -1 and image.max() <= 1 and isinstance(caption, str)
    assert not np.array_equal(a.render(0), ComposedShapesDataset(32, "test").render(0))


def test_composed_shapes_cover_the_vocabulary_and_hold_out_pairs():
    train = ComposedShapesDataset(16, "train")
    seen = [o for i in range(1500) for o in train.scene(i).objects]
    assert {o.shape for o in seen} == set(SHAPES) and len(SHAPES) >= 6
    assert {o.colour for o in seen} == set(COLOUR_NAMES) and len(COLOUR_NAMES) >= 8
    assert {o.size for o in seen} == set(SIZES) and {o.cell for o in seen} == set(range(9))
    assert not any((o.colour, o.shape) in HELD_OUT_PAIRS for o in seen)
    test = ComposedShapesDataset(16, "test")
    assert not any(test.scene(i).held_out for i in range(500))
    heldout = ComposedShapesDataset(16, "heldout")
    assert all(heldout.scene(i).held_out for i in range(500))
    counts = [len(train.scene(i).objects) for i in range(1000)]
    assert 400 < counts.count(2) < 600  # two objects half the time


def test_relations_match_the_geometry():
    data = ComposedShapesDataset(16, "train")
    checked = 0
    for i in range(300):
        scene = data.scene(i)
        if scene.relation is None:
            continue
        (ra, ca), (rb, cb) = divmod(scene.objects[0].cell, 3), divmod(scene.objects[1].cell, 3)
        expect = {"left of": ra == rb and ca < cb, "right of": ra == rb and ca > cb,
                  "above": ca == cb and ra < rb, "below": ca == cb and ra > rb}
        assert expect[scene.relation], (scene, i)
        checked += 1
    assert checked > 100


def test_captioned_digits():
    data = CaptionedDigits(32, "test")
    labels = data.base._labels
    seven = labels.index(7)
    assert {data.caption(i) for i in range(seven, seven + 4)} == {
        "a handwritten seven", "the digit 7", "a seven", "the number seven"}
    image, caption = data[seven]["x"], data[seven]["caption"]
    assert image.shape == (1, 32, 32) and caption == data.caption(seven)
    from ditkit.data.captions import DIGIT_WORDS
    for i in range(0, len(data), 97):
        assert DIGIT_WORDS[labels[i]] in data.caption(i) or str(labels[i]) in data.caption(i)


def _png(path, colour=(200, 10, 10)):
    Image.new("RGB", (20, 20), colour).save(path)


def test_folder_with_metadata_jsonl(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _png(tmp_path / name)
    rows = [{"file_name": "a.png", "text": "a red square"}, {"file_name": "b.png", "text": "another"},
            {"file_name": "c.png", "text": ""}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.warns(UserWarning, match="1 of 3 images"):
        data = load_captioned_dataset(str(tmp_path), image_size=16)
    assert data.num_uncaptioned == 1 and data.caption(0) == "a red square"
    image, caption = data[0]["x"], data[0]["caption"]
    assert image.shape == (3, 16, 16) and caption == "a red square"
    with pytest.raises(DitkitError, match="1 of 3 images .* no caption"):
        CaptionedFolder(str(tmp_path), 16, strict=True)


def test_folder_with_txt_captions(tmp_path):
    _png(tmp_path / "x.png")
    _png(tmp_path / "y.jpg")
    (tmp_path / "x.txt").write_text("a red thing\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="1 of 2"):
        data = CaptionedFolder(str(tmp_path), 16)
    assert [data.caption(i) for i in range(2)] == ["a red thing", ""]
    (tmp_path / "y.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DitkitError, match="y.txt is not UTF-8"):
        CaptionedFolder(str(tmp_path), 16)


@pytest.mark.parametrize("content, message", [
    ('{"file_name": "a.png", "text": "ok"}\n{"file_name": "a.png", "text": \n', "line 2 is not valid JSON"),
    ('{"text": "no name"}\n', "line 1 has no \"file_name\""),
    ('{"file_name": "gone.png", "text": "x"}\n', "names 1 missing file.*gone.png"),
])
def test_bad_metadata_is_one_clear_error(tmp_path, content, message):
    _png(tmp_path / "a.png")
    (tmp_path / "metadata.jsonl").write_text(content)
    with pytest.raises(DitkitError, match=message):
        CaptionedFolder(str(tmp_path), 16)


def test_captions_parse_back_to_their_scenes():
    from ditkit.data.captions import parse_caption

    for split in ("train", "heldout"):
        data = ComposedShapesDataset(16, split)
        for i in range(300):
            scene, parsed = data.scene(i), parse_caption(data.caption(i))
            assert parsed is not None, data.caption(i)
            assert [(o.shape, o.colour, o.size) for o in parsed.objects] == [(o.shape, o.colour, o.size) for o in scene.objects]
            assert parsed.relation == scene.relation
            if scene.relation is None:
                assert parsed.objects[0].cell == scene.objects[0].cell
            assert parsed.held_out == scene.held_out
    assert parse_caption("A Large RED circle in the top left.").objects[0].cell == 0
    assert parse_caption("a purple elephant") is None
