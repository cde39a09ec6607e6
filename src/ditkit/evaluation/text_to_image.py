"""Score a text-to-image checkpoint on the captioned shapes (``ditkit t2i-eval``).

Prompts are the captions of the first items of the ``test`` split (seen colour–shape combinations) and of
the ``heldout`` split (combinations never trained on); each prompt is sampled once and the bundled
attribute classifier reads the image back. The report (JSON) gives accuracy per attribute and all-correct,
seen and held-out separately, and under ``prompts`` each prompt's right and wrong attributes and what was read.
"""

from __future__ import annotations

from ..data.captions import ComposedShapesDataset
from ..errors import DitkitError
from ..imaging import from_uint8
from .attributes import load_attribute_classifier, prompt_rows, read_scenes, score_scenes

# The scoring protocol's sampling, where a checkpoint records none: the training engine's periodic evaluation
# of text runs always samples with it, so t2i-eval of a training checkpoint gives the numbers its run logged.
PROTOCOL_SAMPLING = {"sampler": "dpm++", "steps": 20, "cfg_scale": 4.0}


def prompts_and_scenes(num_seen: int, num_held_out: int):
    """(captions, scenes) of the first ``num_seen`` test items, then the first ``num_held_out`` held-out ones."""
    prompts, scenes = [], []
    for split, count in (("test", num_seen), ("heldout", num_held_out)):
        data = ComposedShapesDataset(32, split, length=max(count, 1))
        prompts += [data.caption(i) for i in range(count)]
        scenes += [data.scene(i) for i in range(count)]
    return prompts, scenes


def sample_and_score(model, prompts: list[str], scenes, *, codec, text_codec, diffusion_config=None,
                     classifier=None, cfg_scale: float = PROTOCOL_SAMPLING["cfg_scale"],
                     sampler: str = PROTOCOL_SAMPLING["sampler"], steps: int | None = PROTOCOL_SAMPLING["steps"],
                     seed: int = 0, batch_size: int = 64, precision: str = "fp32",
                     progress: bool = False) -> tuple[dict, list]:
    """Sample ``model`` once per prompt and score what the attribute classifier reads against ``scenes``:
    (``score_scenes``'s report, the objects read per image). Shared by ``ditkit t2i-eval`` and the training
    engine's periodic evaluation of text runs (which samples with these defaults: DPM-Solver++ 20 steps,
    guidance 4, fp32, so its logged numbers stay comparable across runs)."""
    from ..pipelines import generate

    out = generate(model, prompts=prompts, cfg_scale=cfg_scale, sampler=sampler, steps=steps, seed=seed,
                   batch_size=batch_size, codec=codec, text_codec=text_codec, diffusion_config=diffusion_config,
                   precision=precision, progress=progress)
    device = next(model.parameters()).device
    read = read_scenes(classifier or load_attribute_classifier(device=device), from_uint8(out.images))
    return score_scenes(read, scenes), read


def evaluate_checkpoint(checkpoint: str, *, num_seen: int = 1000, num_held_out: int = 500,
                        cfg_scale: float | None = None, sampler: str | None = None, steps: int | None = None,
                        seed: int = 0, batch_size: int = 64, precision: str = "fp32", device: str = "cpu",
                        progress: bool = True) -> dict:
    """``ditkit t2i-eval``. ``sampler``, ``steps`` and ``cfg_scale`` None: what the checkpoint records it samples
    best with, else ``PROTOCOL_SAMPLING`` (``SampleSettings.resolved_for``); ``precision`` ``auto`` resolves
    for the device. The report's ``settings`` name the resolved ones."""
    from ..pipelines import DiTPipeline, SampleSettings, load_for_sampling
    from ..pipelines.text import is_text_model

    loaded = load_for_sampling(checkpoint, device=device)
    if not is_text_model(loaded.model):
        raise DitkitError(f"{checkpoint} is not a text-to-image model")
    chosen = SampleSettings(sampler=sampler, steps=steps, cfg_scale=cfg_scale, precision=precision).resolved_for(
        loaded, fallback=PROTOCOL_SAMPLING)
    pipe = DiTPipeline.from_loaded(loaded, device=device)  # the codec and the text encoder
    prompts, scenes = prompts_and_scenes(num_seen, num_held_out)
    sampling = {"cfg_scale": chosen.cfg_scale, "sampler": chosen.sampler, "steps": chosen.steps}
    report, read = sample_and_score(pipe.model, prompts, scenes, codec=pipe.codec,
                                    text_codec=pipe.text_codec, diffusion_config=pipe.diffusion_config, seed=seed,
                                    batch_size=batch_size, precision=chosen.precision, progress=progress, **sampling)
    report["settings"] = {"checkpoint": loaded.checkpoint, "num_seen": num_seen, "num_held_out": num_held_out,
                          **sampling, "seed": seed, "precision": chosen.precision}
    report["prompts"] = prompt_rows(read, scenes, prompts)
    return report
