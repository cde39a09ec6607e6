"""The Generate tab's progress is a sampler callback: a DiT reports once per sampler step (Heun's corrector and
the guided half are not steps), a UniDiffuser once per guided network evaluation, as ``network_evaluations``
counts them, on both of its processes."""

import pytest

from ditkit.app import generation
from ditkit.app.models import ModelCache
from ditkit.diffusion import DiffusionConfig
from ditkit.diffusion.unidiffuser import network_evaluations


@pytest.fixture(scope="module")
def cache():
    return ModelCache("cpu")


def _count_forwards(module):
    calls = []
    return calls, module.register_forward_pre_hook(lambda *_: calls.append(1))


@pytest.mark.parametrize("sampler, evaluations", [("ddim", 3), ("dpm++", 3), ("heun", 5)])
def test_a_dit_reports_each_sampler_step(cache, tmp_path, sampler, evaluations):
    progress = []
    calls, hook = _count_forwards(cache.get("mnist-dit").model)
    try:
        generation.generate(generation.GenerateRequest(model="mnist-dit", classes=["3"], sampler=sampler, steps=3,
                                                       cfg_scale=4.0, seed=1, num_images=1),
                            cache, out_root=tmp_path, report=lambda d, t: progress.append((d, t)))
    finally:
        hook.remove()
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert len(calls) == evaluations  # one batched (guided) forward per evaluation; Heun's K steps take 2K − 1


def _uni(path, process=None):
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                      text_encoder={"type": "text", "spec": "chars", "max_length": 12}, image_encoder="pooled:2",
                      vocab=build_vocab(["a red circle", "a blue square"]), decoder=dict(width=32, depth=1, heads=2),
                      seed=0, process=process).save(path)
    return str(path)


@pytest.mark.parametrize("process, sampler, mode", [
    (None, "dpm-solver", "t2i"),
    (DiffusionConfig(process="flow", learn_sigma=False), "heun", "t2i"),
    (DiffusionConfig(process="flow", learn_sigma=False), "heun", "t2i2t"),
    (DiffusionConfig(process="flow", learn_sigma=False), "euler", "joint"),
])
def test_a_unidiffuser_reports_each_network_evaluation(cache, tmp_path, process, sampler, mode):
    path = _uni(tmp_path / "uni", process)
    progress = []
    calls, hook = _count_forwards(cache.get(path).model.uvit)
    try:
        generation.generate(generation.GenerateRequest(model=path, mode=mode, prompt="a red circle", sampler=sampler,
                                                       steps=3, cfg_scale=2.0, seed=0, num_images=1),
                            cache, out_root=tmp_path, report=lambda d, t: progress.append((d, t)))
    finally:
        hook.remove()
    total = network_evaluations(mode, 3, sampler)
    assert progress == [(k, total) for k in range(1, total + 1)]
    per_evaluation = 3 if mode == "joint" else 2  # the conditional call and the unconditional one(s)
    assert len(calls) == per_evaluation * total
