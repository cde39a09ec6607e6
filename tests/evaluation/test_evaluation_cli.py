"""``ditkit eval`` on the inputs users bring: ADM .npz, PNG folders with labelled names, bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from ditkit.cli import main
from ditkit.evaluation import open_images


@pytest.fixture(scope="module", autouse=True)
def _shared_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        # One path for all evaluation test modules of a session: reference statistics are computed once.
        mp.setenv("DITKIT_CACHE", str(tmp_path_factory.getbasetemp() / "ditkit_eval_cache"))
        yield


@pytest.fixture(scope="module")
def digits():
    return open_images("mnist:test")


def _eval(capsys, *args):
    code = main(["eval", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_adm_npz_with_labels(tmp_path, capsys, digits):
    path = tmp_path / "samples.npz"
    # ADM layout: uint8 N×H×W×3, grayscale as three equal channels; labels as `ditkit sample --npz` writes them.
    np.savez(path, arr_0=np.repeat(digits.images[:300], 3, axis=3), labels=digits.labels[:300])
    out_json = tmp_path / "metrics.json"
    code, out, err = _eval(capsys, "--samples", path, "--reference", "mnist", "--out", out_json)
    assert code == 0, err
    result = json.loads(out_json.read_text())
    assert result["extractor"] == "classifier:mnist" and "extractor: classifier:mnist" in out
    assert result["samples"]["count"] == 300 and result["samples"]["labelled"]
    assert result["reference"]["count"] == 4000
    assert result["metrics"]["class_accuracy"] >= 0.97
    assert {"fid", "inception_score", "precision", "recall"} <= set(result["metrics"])
    assert "sfid" not in result["metrics"]  # spatial features are Inception's
    assert result["ditkit_version"] and result["arguments"]["reference"] == "mnist"


def test_png_folder_with_labelled_names(tmp_path, capsys, digits):
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(40):  # both naming styles: `ditkit sample` writes 000123_class3.png
        name = f"{i:06d}_class{digits.labels[i]}.png" if i % 2 else f"class_{digits.labels[i]:03d}_{i:04d}.png"
        Image.fromarray(digits.images[i, ..., 0]).save(folder / name)
    code, out, err = _eval(capsys, "--samples", folder, "--reference", "mnist:train")
    assert code == 0, err
    assert "class accuracy:" in out and "FID:" in out
    assert float(out.split("class accuracy:")[1].split()[0]) >= 0.9
    # 40 samples for 128-d features: a warning, not a failure.
    assert "warning" in err and "unreliable" in err


def test_ditkit_sample_output_folder_means_its_samples(tmp_path, capsys, digits):
    out = tmp_path / "run"
    (out / "samples").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    Image.new("RGB", (340, 70)).save(out / "grid.png")  # not a sample: must not be read
    for i in range(8):
        Image.fromarray(digits.images[i, ..., 0]).save(out / "samples" / f"{i:06d}_class{digits.labels[i]}.png")
    code, out_text, err = _eval(capsys, "--samples", out, "--reference", "mnist")
    assert code == 0, err
    assert "8 images" in out_text and "class accuracy" in out_text


def test_unlabelled_folder_has_no_class_accuracy(tmp_path, capsys, digits):
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(digits.images[i, ..., 0]).save(folder / f"{i:06d}.png")
    code, out, err = _eval(capsys, "--samples", folder, "--reference", "mnist")
    assert code == 0, err
    assert "class accuracy" not in out


def _write_bad_input(kind, tmp_path, digits):
    """Returns the eval arguments for one kind of bad input."""
    samples = tmp_path / "samples.npz"
    if kind == "missing file":
        return ["--samples", tmp_path / "nope.npz", "--reference", "mnist"]
    if kind == "empty folder":
        (tmp_path / "empty").mkdir()
        return ["--samples", tmp_path / "empty", "--reference", "mnist"]
    if kind == "corrupt npz":
        samples.write_bytes(b"PK\x03\x04 this is not a zip archive")
        return ["--samples", samples, "--reference", "mnist"]
    if kind == "npz without arr_0":
        np.savez(samples, images=digits.images[:10])
        return ["--samples", samples, "--reference", "mnist"]
    if kind == "float pixels":
        np.savez(samples, arr_0=digits.images[:10].astype(np.float32) / 255)
        return ["--samples", samples, "--reference", "mnist"]
    if kind == "mismatched resolutions":
        np.savez(samples, arr_0=digits.images[:10, 2:30, 2:30])  # 28×28 samples
        reference = tmp_path / "ref.npz"
        np.savez(reference, arr_0=digits.images[10:20])  # 32×32 reference
        return ["--samples", samples, "--reference", reference, "--extractor", "classifier:mnist"]
    if kind == "mixed sizes in a folder":
        folder = tmp_path / "mixed"
        folder.mkdir()
        Image.fromarray(digits.images[0, ..., 0]).save(folder / "a.png")
        Image.fromarray(digits.images[1, 2:30, 2:30, 0]).save(folder / "b.png")
        return ["--samples", folder, "--reference", "mnist"]
    if kind == "corrupt png":
        folder = tmp_path / "broken"
        folder.mkdir()
        (folder / "000000.png").write_bytes(b"\x89PNG not really")
        return ["--samples", folder, "--reference", "mnist"]
    if kind == "label out of range":
        np.savez(samples, arr_0=digits.images[:10], labels=np.full(10, 12))
        return ["--samples", samples, "--reference", "mnist"]
    if kind == "too few samples":
        np.savez(samples, arr_0=digits.images[:3])
        return ["--samples", samples, "--reference", "mnist"]
    if kind == "unknown extractor":
        np.savez(samples, arr_0=digits.images[:10])
        return ["--samples", samples, "--reference", "mnist", "--extractor", "vgg"]
    if kind == "unknown split":
        np.savez(samples, arr_0=digits.images[:10])
        return ["--samples", samples, "--reference", "mnist:validation"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("missing file", "not found"),
    ("empty folder", "no images"),
    ("corrupt npz", "corrupt"),
    ("npz without arr_0", "arr_0"),
    ("float pixels", "uint8"),
    ("mismatched resolutions", "resolutions differ"),
    ("mixed sizes in a folder", "different sizes"),
    ("corrupt png", "cannot read image"),
    ("label out of range", "class label 12"),
    ("too few samples", "at least 4 samples"),
    ("unknown extractor", "unknown extractor"),
    ("unknown split", "split"),
])
def test_bad_input_is_one_clear_line(kind, message, tmp_path, capsys, digits):
    code, out, err = _eval(capsys, *_write_bad_input(kind, tmp_path, digits))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ditkit eval: error:"), err
    assert message in lines[0]
    assert "Traceback" not in err
