"""The FID InceptionV3: standard parameter layout, safe loading, and a random-weight run end to end
through ``ditkit eval`` (the real pt_inception weights cannot be fetched here)."""

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ditkit.cli import main
from ditkit.errors import DitkitError
from ditkit.evaluation import FIDInceptionV3, load_fid_inception, resolve_inception_weights


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DITKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def random_inception():
    """Random weights at a sensible scale: He-initialised convs so activations neither vanish nor explode
    (PyTorch's default init shrinks them to ~1e-8 over 90 layers), random BN statistics, random fc."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_parameter_layout_is_the_pytorch_fid_one(random_inception):
    state = random_inception.state_dict()
    # Names and shapes of the converted TF weights (pt_inception-2015-12-05): 1008 logits, no aux head.
    expected = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6d.branch7x7dbl_5.conv.weight": (192, 160, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.bn.bias": (384,),
        "fc.weight": (1008, 2048),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("AuxLogits") for k in state)
    # torchvision's InceptionV3 without its aux head has 23,834,568 parameters at 1000 classes; 1008 adds 8 × 2049.
    assert sum(p.numel() for p in random_inception.parameters()) == 23_834_568 + 8 * 2049


def test_outputs_pool_logits_and_adm_spatial_features(random_inception):
    with torch.no_grad():
        out = random_inception(torch.rand(1, 3, 40, 40))  # any input size: resized to 299 inside
    assert out["pool"].shape == (1, 2048)
    assert out["logits"].shape == (1, 1008)
    assert out["spatial"].shape == (1, 7 * 17 * 17)
    # Inception Score uses pool3 × the softmax weights without the bias (improved-GAN / ADM definition).
    torch.nn.init.normal_(random_inception.fc.bias)
    assert torch.allclose(out["logits"], out["pool"] @ random_inception.fc.weight.T, atol=1e-5)
    assert not torch.allclose(out["logits"], random_inception.fc(out["pool"]), atol=1e-3)


def test_loading_refuses_wrong_files_with_clear_errors(tmp_path):
    with pytest.raises(DitkitError, match="not found"):
        load_fid_inception(str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(DitkitError, match="not an FID InceptionV3 state dict"):
        load_fid_inception(str(wrong))
    arbitrary = tmp_path / "pickle.pth"
    with open(arbitrary, "wb") as f:
        pickle.dump({"x": object()}, f)  # arbitrary objects: refused by weights_only loading
    with pytest.raises(DitkitError, match="cannot read Inception weights"):
        load_fid_inception(str(arbitrary))


def test_no_weights_offline_without_download_is_a_clear_error():
    with pytest.raises(DitkitError, match="--inception-weights"):
        resolve_inception_weights(None, download=False)


def test_download_into_the_cache_checks_the_hash_in_the_file_name(tmp_path, monkeypatch, random_inception):
    import hashlib

    from ditkit.evaluation import inception

    served = tmp_path / "served.pth"
    torch.save(random_inception.state_dict(), served)
    monkeypatch.setattr(inception, "FID_WEIGHTS_URL", served.as_uri())  # file:// stands in for the release URL
    # The standard name promises SHA-256 prefix 6726825d: these bytes do not match, so nothing is cached.
    with pytest.raises(DitkitError, match="checksum"):
        resolve_inception_weights()
    assert not list((tmp_path / "cache" / "inception").iterdir())
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    monkeypatch.setattr(inception, "FID_WEIGHTS_FILE", f"pt_inception-2015-12-05-{digest[:8]}.pth")
    path = resolve_inception_weights()
    assert path.startswith(str(tmp_path / "cache")) and resolve_inception_weights() == path  # then cached
    loaded = load_fid_inception()
    assert torch.equal(loaded.fc.weight, random_inception.fc.weight)


def test_random_weight_inception_end_to_end_through_ditkit_eval(tmp_path, capsys, random_inception):
    weights = tmp_path / "random_inception.pth"
    # Saved like the pytorch-fid file: a plain state dict without BatchNorm step counters.
    torch.save({k: v for k, v in random_inception.state_dict().items() if not k.endswith("num_batches_tracked")},
               weights)
    rng = np.random.default_rng(0)
    samples = tmp_path / "samples"
    samples.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(samples / f"{i:06d}.png")
    reference = tmp_path / "ref.npz"
    np.savez(reference, arr_0=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    out = tmp_path / "metrics.json"
    code = main(["eval", "--samples", str(samples), "--reference", str(reference), "--extractor", "inception",
                 "--inception-weights", str(weights), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(out.read_text())
    # Not the standard weights: named by their hash, so they can never pass for real FID numbers.
    assert result["extractor"].startswith("inception-v3[") and result["extractor"] in captured.out
    metrics = result["metrics"]
    for key in ("fid", "sfid", "inception_score", "precision", "recall"):
        assert np.isfinite(metrics[key]), key
    assert metrics["fid"] > 0 and metrics["sfid"] > 0
    assert 1.0 <= metrics["inception_score"] <= 1008
    assert "class_accuracy" not in metrics  # unlabelled samples
    assert result["samples"]["count"] == 4 and result["reference"]["count"] == 4
    assert result["ditkit_version"]
    assert "unreliable" in captured.err  # 4 samples for 2048-d features
