"""UniDiffuser on the flow-matching process: the objective, the modes sampled by the registry's flow samplers,
the process and sampling recorded in the checkpoint, training through ``ditkit train`` with exact resume, and
bad settings refused before anything is written. The official process keeps its own golden tests
(test_unidiffuser_sampling.py here, training/test_unidiffuser_training.py)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from ditkit.diffusion import DiffusionConfig
from ditkit.diffusion.flow import FlowMatching
from ditkit.diffusion.unidiffuser import network_evaluations, unidiffuser_sample
from ditkit.errors import DitkitError
from ditkit.pipelines.unidiffuser import UniDiffuser
from ditkit.training import train
from ditkit.training.unidiffuser_objective import UniDiffuserFlowObjective, UniDiffuserObjective
from tests.training.test_unidiffuser_training import DECODER, config, decoder_ckpt  # noqa: F401 (a fixture)

FLOW = DiffusionConfig(process="flow", learn_sigma=False, time_sampling="logit-normal")
SHAPES = {"img": (1, 8, 8), "clip_img": (1, 4), "text": (3, 6)}


class ConstantData(torch.nn.Module):
    """The exact velocity field of data that is one constant per modality: x_t = (1−t)c + tε gives
    v = ε − c = (x_t − c)/t. Records every (t_img, t_text) it is called with (network times, 0…1000)."""

    def __init__(self):
        super().__init__()
        self.targets = {"img": 0.5, "clip_img": -0.25, "text": 0.75}
        self.calls = []
        self.config = type("C", (), {"in_chans": 1, "img_size": 8, "clip_img_dim": 4, "num_text_tokens": 3,
                                     "text_dim": 6})()

    def forward(self, img, clip_img, text, t_img, t_text, data_type):
        self.calls.append((t_img.float().clone(), t_text.float().clone()))
        out = []
        for x, t, c in ((img, t_img, 0.5), (clip_img, t_img, -0.25), (text, t_text, 0.75)):
            t = (t.float() / 1000).clamp(min=1e-6).view(-1, *([1] * (x.dim() - 1)))
            out.append((x - c) / t)
        return out


@pytest.mark.parametrize("sampler", ["heun", "euler", "dpm++"])
@pytest.mark.parametrize("mode", ["t2i", "i2t", "joint", "i", "t", "i2t2i", "t2i2t"])
def test_every_mode_reaches_the_data_on_the_flow_process(mode, sampler):
    net = ConstantData()
    cond = {"text": torch.randn(2, 3, 6), "img": torch.randn(2, 1, 8, 8), "clip_img": torch.randn(2, 1, 4)}
    need = {"t2i": ["text"], "t2i2t": ["text"], "i2t": ["img", "clip_img"], "i2t2i": ["img", "clip_img"]}
    calls = []
    out = unidiffuser_sample(net, mode, 2, cond={k: cond[k] for k in need.get(mode, [])}, steps=4, scale=3.0,
                             process=FLOW, sampler=sampler, callback=lambda **kw: calls.append(kw["t"]))
    for key in out:  # every generated modality lands on its constant (guidance: cond = uncond)
        if key in need.get(mode, []) and mode not in ("i2t2i", "t2i2t"):
            continue
        assert torch.allclose(out[key], torch.full_like(out[key], net.targets[key]), atol=1e-5), key
    assert len(calls) == network_evaluations(mode, 4, sampler)
    times = torch.cat([torch.cat(c) for c in net.calls])
    assert times.min() >= 0 and times.max() <= 1000  # network times are 1000·t; 0 = clean, 1000 = absent


def test_a_clean_condition_is_time_0_and_guidance_sees_the_absent_modality_at_1000():
    net = ConstantData()
    unidiffuser_sample(net, "t2i", 1, cond={"text": torch.zeros(1, 3, 6)}, steps=2, scale=1.0, process=FLOW,
                       sampler="euler")
    (t_img_c, t_text_c), (t_img_u, t_text_u) = net.calls[:2]  # first evaluation: conditional, then unconditional
    assert t_text_c.tolist() == [0.0] and t_text_u.tolist() == [1000.0]
    assert t_img_c.tolist() == t_img_u.tolist() == [1000.0]  # the grid starts at pure noise


def test_the_official_process_refuses_a_flow_sampler():
    with pytest.raises(DitkitError, match="samples with dpm-solver, not 'heun'"):
        unidiffuser_sample(ConstantData(), "i", 1, steps=2, sampler="heun")


def _batch(n=6):
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(n, *s, generator=g) for k, s in SHAPES.items()}


def test_flow_objective_noises_linearly_and_targets_the_velocity():
    objective = UniDiffuserFlowObjective(FlowMatching(FLOW))
    batch, seen = _batch(), {}

    def net(img, clip_img, text, t_img, t_text, data_type):
        seen.update(img=img, text=text, t_img=t_img, t_text=t_text)
        return [torch.zeros_like(img), torch.zeros_like(clip_img), torch.zeros_like(text)]

    losses = objective(net, batch, torch.Generator().manual_seed(1))
    t_img, t_text, eps = objective.draw(batch, torch.Generator().manual_seed(1))  # the same draws replayed
    assert torch.allclose(seen["t_img"], 1000 * t_img) and torch.allclose(seen["t_text"], 1000 * t_text)
    t = t_img.view(-1, 1, 1, 1)
    assert torch.allclose(seen["img"], (1 - t) * batch["img"] + t * eps["img"], atol=1e-6)
    velocity = eps["text"] - batch["text"]  # a zero prediction's loss is the velocity's mean square
    assert torch.allclose(losses["mse_text"], velocity.pow(2).flatten(1).mean(1), atol=1e-6)
    assert 0 < t_img.min() and t_img.max() < 1


@pytest.mark.parametrize("objective", [UniDiffuserObjective(condition_share=1.0),
                                       UniDiffuserFlowObjective(FlowMatching(FLOW), condition_share=1.0)])
def test_condition_share_trains_clean_and_absent_modalities_and_skips_the_clean_loss(objective):
    batch = _batch(400)
    t_img, t_text, _ = objective.draw(batch, torch.Generator().manual_seed(2))
    clean, absent = objective.clean_time, objective.absent_time
    cases = [t_img == clean, t_text == clean, t_img == absent, t_text == absent, t_img == t_text]
    assert all(50 < int(c.sum()) < 115 for c in cases)  # each of the five lines about a fifth of the samples
    assert bool(torch.stack(cases).any(0).all())  # share 1: every sample on one of them
    net = lambda img, clip, text, *_: [torch.ones_like(img), torch.ones_like(clip), torch.ones_like(text)]
    losses = objective(net, batch, torch.Generator().manual_seed(2))
    assert torch.all(losses["mse_text"][t_text == clean] == 0) and torch.all(losses["mse_img"][t_img == clean] == 0)
    assert torch.all(losses["mse_text"][t_text != clean] > 0)


def test_condition_share_zero_draws_what_the_paper_draws():
    batch = _batch()
    a = UniDiffuserObjective().draw(batch, torch.Generator().manual_seed(5))
    b = UniDiffuserObjective(condition_share=0.0).draw(batch, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(DitkitError, match="condition share must be in"):
        UniDiffuserObjective(condition_share=1.5)


def _tiny(process=None):
    return UniDiffuser.build(image_size=8, image_channels=1, text_encoder="chars", image_encoder="pooled:2",
                             uvit=dict(embed_dim=16, depth=2, num_heads=2, patch_size=4), vocab=["<pad>", "<eos>", "<unk>", "a", "b"],
                             process=process)


def test_checkpoint_records_its_process_and_sampling_and_bare_calls_use_them(tmp_path):
    model = _tiny(FLOW)
    model.sampling = {"sampler": "euler", "steps": 3, "scale": 1.5}
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["process"]["process"] == "flow" and config["sampling"]["sampler"] == "euler"
    loaded = UniDiffuser.load(tmp_path / "m")
    assert loaded.family == "flow" and loaded.sampling_settings() == {"sampler": "euler", "steps": 3, "scale": 1.5}
    assert loaded.sampling_settings("heun") == {"sampler": "heun", "steps": 10, "scale": 1.5}  # heun's own steps
    assert loaded.sampling_settings(steps=7)["steps"] == 7
    calls = []
    loaded.generate("i", n=1, callback=lambda **kw: calls.append(1))
    assert len(calls) == 3  # Euler, 3 steps: the recorded sampling
    official = _tiny()
    official.save(tmp_path / "o")
    assert "process" not in json.loads((tmp_path / "o" / "config.json").read_text())
    assert UniDiffuser.load(tmp_path / "o").sampling_settings() == {"sampler": "dpm-solver", "steps": 50,
                                                                      "scale": 7.0}


def test_ditkit_uni_bare_uses_the_recorded_sampling(tmp_path):
    model = _tiny(FLOW)
    model.sampling = {"sampler": "heun", "steps": 2, "scale": 2.0}
    model.save(tmp_path / "m")
    run = subprocess.run([sys.executable, "-m", "ditkit", "uni", "t", "--checkpoint", str(tmp_path / "m"), "-n", "2",
                          "--no-progress", "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (record["sampler"], record["steps"], record["scale"]) == ("heun", 2, 2.0)
    bad = subprocess.run([sys.executable, "-m", "ditkit", "uni", "t", "--checkpoint", str(tmp_path / "m"),
                          "--sampler", "nope", "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_flow_uvit_trains_resumes_exactly_and_samples_from_its_checkpoint(tmp_path, decoder_ckpt):
    kw = dict(init_from=decoder_ckpt, diffusion=FLOW, uni_condition_share=0.5)
    straight = train(config(tmp_path / "a", **kw))
    train(config(tmp_path / "b", max_steps=2, ckpt_every=2, **kw))
    resumed = train(config(tmp_path / "b", resume="latest", diffusion=FLOW, uni_condition_share=0.5))
    for a, b in zip(load_file(os.path.join(straight["checkpoint"], "train_model.safetensors")).items(),
                    load_file(os.path.join(resumed["checkpoint"], "train_model.safetensors")).items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1]), a[0]
    model = UniDiffuser.load(straight["checkpoint"])
    assert model.family == "flow" and model.process.time_sampling == "logit-normal"
    with torch.no_grad():
        z = model.diffusion_text(model.encode_prompts(["a red circle", "a blue square", "a green triangle"]))
    assert model.text_norm is not None and 0.3 < float(z.std()) < 3  # standardised on the data's captions
    text = torch.randn(2, *z.shape[1:])
    assert torch.allclose(model.text_norm.denormalize(model.text_norm.normalize(text)), text, atol=1e-5)
    out = model.generate("t2i", prompts=["a red circle"], steps=2)
    assert out.images.shape == (1, 3, 16, 16) and torch.isfinite(out.images).all()


@pytest.mark.parametrize("case, message", [
    ("decoder-recipe", "--process does not apply to a caption-decoder run"),
    ("direction", "--direction-loss does not apply to a uvit-tiny run"),
    ("x-prediction", "predicts velocities"),
    ("share", "condition share must be in"),
    ("decoder-share", "--uni-condition-share does not apply to a caption-decoder run"),
])
def test_bad_flow_settings_are_one_clear_error_before_anything_is_written(tmp_path, decoder_ckpt, case, message):
    kw = {"decoder-recipe": dict(diffusion=FLOW, **DECODER),
          "direction": dict(diffusion=DiffusionConfig(process="flow", learn_sigma=False, direction_loss=0.5)),
          "x-prediction": dict(diffusion=DiffusionConfig(process="flow", learn_sigma=False, prediction="x"),
                               init_from=decoder_ckpt),
          "share": dict(uni_condition_share=-0.1),
          "decoder-share": dict(uni_condition_share=0.3, **DECODER)}[case]
    with pytest.raises(DitkitError, match=message):
        train(config(tmp_path / "x", **kw))
    assert not os.path.isdir(tmp_path / "x" / "checkpoints")
