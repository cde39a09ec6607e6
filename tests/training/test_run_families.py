"""One run family for every training run: ``family_for`` always returns one, each implements ``RunFamily``, and a
new family is one class plus one registry line — shown with a toy denoiser trained, checkpointed and resumed by
the unchanged loop."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ditkit.errors import DitkitError
from ditkit.training import TrainConfig, families, train
from ditkit.training.class_dit import ClassDiTRun
from ditkit.training.families import FAMILIES, RunFamily, family_for
from ditkit.training.text import TextTraining
from ditkit.training.unidiffuser_run import CaptionDecoderRun, UniDiffuserRun

PROTOCOL = [name for name in ("name", "trains_dit", "export", *vars(RunFamily)) if not name.startswith("_")]


@pytest.mark.parametrize("kw, family", [
    (dict(), ClassDiTRun),
    (dict(model="DiT-XL/2", data="some/folder"), ClassDiTRun),
    (dict(text_encoder="minilm"), TextTraining),
    (dict(model="caption-decoder", text_encoder="minilm"), CaptionDecoderRun),
    (dict(model="uvit-small"), UniDiffuserRun),
    (dict(model="uvit-tiny", text_encoder="minilm"), UniDiffuserRun),
])
def test_every_run_has_a_family(kw, family):
    assert type(family_for(TrainConfig(**kw))) is family


def test_every_registered_family_implements_the_protocol():
    assert list(FAMILIES.values())[-1] is ClassDiTRun  # the one that claims any run comes last
    assert {"open", "model_config", "create_model", "load_init", "objective", "extra", "grid_hook", "eval_fn",
            "save_cache", "claims"} <= set(PROTOCOL)
    for family in FAMILIES.values():
        missing = [name for name in PROTOCOL if not hasattr(family, name)]
        assert not missing, f"{family.__name__} lacks {missing}"


class ToyConfig(dict):
    learn_sigma = False

    def to_dict(self):
        return dict(self)


class ToyDenoiser(nn.Module):
    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x):
        return self.net(x)


class ToyObjective:
    def __call__(self, net, batch, generator=None):
        x = batch["x"]
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return {"loss": (net(x + 0.5 * noise) - x).pow(2).flatten(1).mean(1)}


class ToyRun(ClassDiTRun):
    """A new family: a convolutional denoiser on the class data, exported as a bare safetensors file."""

    name = "toy"
    trains_dit = False

    @classmethod
    def claims(cls, config):
        return config.model == "toy"

    def model_config(self, config, resumed):
        return ToyConfig(family="toy", channels=self.data.in_channels, width=8)

    def create_model(self, model_config):
        return ToyDenoiser(model_config["channels"], model_config["width"])

    def objective(self, diffusion):
        return ToyObjective()

    def export(self, ema, folder, extra):
        save_file({k: v.detach().contiguous() for k, v in ema.state_dict().items()},
                  os.path.join(folder, "model.safetensors"))
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump({"format": "toy", "extra": extra}, f)

    def eval_fn(self, config, data):
        return lambda ema, step: {"toy_weight_norm": sum(p.norm() for p in ema.parameters()).item()}


def test_a_new_family_is_one_class_plus_one_registry_line(tmp_path, monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", {"toy": ToyRun, **FAMILIES})  # the one registry line
    config = TrainConfig(data="mnist", image_size=16, model="toy", max_steps=4, global_batch_size=4, ckpt_every=2,
                         log_every=1, sample_every=0, fid_every=2, seed=1, precision="fp32", progress=False,
                         threads=1, out=str(tmp_path / "a"))
    done = train(config)
    assert done["step"] == 4
    assert json.load(open(os.path.join(done["checkpoint"], "config.json")))["format"] == "toy"
    evals = [json.loads(line)["eval"] for line in open(tmp_path / "a" / "metrics.jsonl") if '"eval"' in line]
    assert len(evals) == 2 and "toy_weight_norm" in evals[0]

    train(TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "b"), "max_steps": 2}))
    resumed = train(TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "b"), "resume": "latest"}))
    for name in ("model.safetensors", "train_model.safetensors"):
        a, b = load_file(os.path.join(done["checkpoint"], name)), load_file(os.path.join(resumed["checkpoint"], name))
        assert all(torch.equal(a[k], b[k]) for k in a), name

    with pytest.raises(DitkitError, match="not to a toy run"):
        train(TrainConfig(**{**config.to_dict(), "out": str(tmp_path / "c"), "dispersive_loss": 0.5}))
