"""Training text-to-image models: ``ditkit train --text-encoder minilm`` (captions in, a text DiT out:
``cross-text`` blocks, or ``joint-text`` with ``--block``).

The conditioning follows the data: with a text encoder, ``--data shapes`` / ``mnist`` / a folder give
captions (``data.captions``) and the model is a text model; without one, labels and a class model.
Captions are encoded by the frozen text encoder once each (``codecs.text_cache``, kept in memory, saved
to ``--text-cache DIR`` when given) and reach the network as a ``TextEncoding``; caption dropout (the
model's ``class_dropout_prob``) trains the null text used by classifier-free guidance. ``TextTraining`` is the
text DiT's run family (``families.py``).
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import replace

from ..codecs import make_codec
from ..codecs.text import make_text_codec
from ..codecs.text_cache import TextCache
from ..data.captions import load_captioned_dataset
from ..errors import DitkitError
from ..models.registry import TEXT_BLOCKS
from .build import Data, model_config_for
from .class_dit import ClassDiTRun
from .hooks import SampleGridHook
from .outputs import fork_rng_around
from .step import DiffusionObjective


class TextObjective(DiffusionObjective):
    """The DiT objective on a batch whose ``caption`` strings are encoded (cached) into ``y``."""

    def __init__(self, diffusion, cache: TextCache):
        super().__init__(diffusion)
        self.cache = cache

    def __call__(self, net, batch, generator=None):
        text = self.cache.encode(list(batch["caption"])).to(batch["x"].device)
        return super().__call__(net, dict(batch, y=text), generator)


class TextTraining(ClassDiTRun):
    """The text DiT run family (``families.py``): a class DiT's run, plus the frozen encoder and its cache, the
    model's text fields and grid prompts."""

    name = "text-dit"

    @classmethod
    def claims(cls, config) -> bool:
        """A DiT run with ``--text-encoder``."""
        return bool(config.text_encoder)

    def open(self, config, d) -> Data:
        """The captioned training set as the loop's ``Data`` (pixels, or a VAE encoding each batch), then the
        text side of the run."""
        if config.latent_cache:
            raise DitkitError("--latent-cache is for label models; a text model encodes its images each step")
        dataset, image_size = open_captions(config, d)
        codec = make_codec(config.vae, image_channels=dataset.channels).to(d.device)
        self.data = Data(dataset, codec, codec.downsample != 1, codec.latent_channels, codec.latent_size(image_size),
                         image_size)
        self.codec = make_text_codec(config.text_encoder, device=d.device)
        self.dataset, self.device = dataset, d.device
        self.cache_dir = config.text_cache
        self.cache = TextCache.open(self.cache_dir or None, self.codec)  # a folder not a text cache: refused now
        self.saved_rows = len(self.cache)
        count = min(len(dataset), config.sample_count)  # captions spread over the data (mnist is sorted by digit)
        self.grid_prompts = [dataset.caption(i * len(dataset) // count) for i in range(count)]
        return self.data

    def model_config(self, config, resumed):
        return model_config_for(self.with_model_fields(config), self.data, resumed)

    def with_model_fields(self, config):
        """``config`` with the model's text fields set (a text block, cross-text unless ``--block`` names
        another; the encoder's width and length)."""
        block = config.model_overrides.get("block") or "cross-text"
        if block not in TEXT_BLOCKS:
            raise DitkitError(f"a text model uses a text block ({', '.join(TEXT_BLOCKS)}), not {block!r} (change "
                              f"--block or drop --text-encoder)")
        fields = {"block": block, "text_dim": self.codec.width, "text_len": self.codec.max_length}
        return replace(config, model_overrides={**config.model_overrides, **fields})

    def objective(self, diffusion) -> TextObjective:
        return TextObjective(diffusion, self.cache)

    def extra(self) -> dict:
        """Stored in every checkpoint's config.json, so ``ditkit sample`` rebuilds the same encoder."""
        return {"text_encoder": self.codec.to_config()}

    def grid_hook(self, run_dir: str, codec, config) -> "TextGridHook":
        return TextGridHook(run_dir, codec, config, self)

    def eval_fn(self, config, data: Data):
        """The periodic evaluation (``--fid-every N``, ``--fid-samples K``). On the captioned shapes: ``ditkit
        t2i-eval``'s attribute accuracy (its settings) on the first K test captions, logged as ``t2i_<attribute>``
        and ``t2i_all_correct``, and the all-correct share of K/2 held-out ones (``t2i_held_out_all_correct``).
        Elsewhere: the FID of K samples of the data's captions against the training images
        (``make_training_eval_fn``), and on MNIST the share drawn as the digit their caption names."""
        count = config.fid_samples
        if config.data == "shapes":
            from ..evaluation.attributes import load_attribute_classifier
            from ..evaluation.text_to_image import prompts_and_scenes, sample_and_score

            prompts, scenes = prompts_and_scenes(count, count // 2)
            classifier = load_attribute_classifier(device=self.device)

            def attribute_accuracy(ema_model, step: int) -> dict[str, float]:
                report, _ = sample_and_score(ema_model, prompts, scenes, codec=data.codec, text_codec=self.codec,
                                             classifier=classifier, seed=config.seed,
                                             diffusion_config=config.diffusion.to_dict())
                scores = {f"t2i_{k}": v for k, v in report["seen"].items() if k != "count_prompts" and v is not None}
                if count // 2:
                    scores["t2i_held_out_all_correct"] = report["held_out"]["all_correct"]
                return scores

            return attribute_accuracy
        from ..evaluation import make_training_eval_fn

        items = [i * len(self.dataset) // count for i in range(min(count, len(self.dataset)))]
        labels = [self.dataset.label(i) for i in items] if hasattr(self.dataset, "label") else None  # mnist
        return make_training_eval_fn(config.data, count, image_size=config.image_size, codec=config.vae,
                                     seed=config.seed, prompts=[self.dataset.caption(i) for i in items],
                                     text_codec=self.codec, prompt_labels=labels,
                                     diffusion_config=config.diffusion.to_dict())

    def save_cache(self) -> None:
        """Write the cache when it has grown (at checkpoints too, so a stopped run's successor reuses it)."""
        if self.cache_dir and len(self.cache) > self.saved_rows:
            self.cache.save(self.cache_dir)
            self.saved_rows = len(self.cache)


class TextGridHook(SampleGridHook):
    """The EMA sample grid of a text model: the first captions of the data, captioned, fixed seed."""

    def __init__(self, run_dir: str, codec, config, text: TextTraining):
        super().__init__(run_dir, codec, config)
        self.text = text

    def __call__(self, state) -> None:
        c = self.config
        path = os.path.join(self.run_dir, "samples", f"step-{state.step:07d}.png")
        fork_rng_around(save_text_grid, state.ema, self.codec, self.text, path, steps=c.sample_steps,
                        cfg_scale=c.sample_cfg, seed=c.seed, diffusion_config=c.diffusion.to_dict())


def save_text_grid(ema_model, codec, text: TextTraining, path: str, *, steps: int, cfg_scale: float, seed: int,
                   diffusion_config: dict | None = None) -> None:
    from ..pipelines import generate
    from ..pipelines.images import save_png
    from ..pipelines.text import captioned_grid

    out = generate(ema_model, prompts=text.grid_prompts, codec=codec, sampler="ddim", steps=steps,
                   cfg_scale=cfg_scale, seed=seed, batch_size=len(text.grid_prompts), progress=False,
                   text_codec=text.codec, diffusion_config=diffusion_config)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_png(captioned_grid(out.images, text.grid_prompts), path)


def open_captions(config, d):
    """The captioned training set (``--data`` with captions; warnings printed once, by rank 0) and its image
    size. Shared by every run that trains on captions (text DiTs here, UniDiffuser)."""
    bundled = config.data in ("mnist", "shapes")
    image_size = config.image_size or (32 if bundled else 256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_captioned_dataset(config.data, image_size=image_size, split="train", strict=config.strict)
    for w in caught:
        if d.is_main:
            print(f"ditkit train: warning: {w.message}", file=sys.stderr)
    return dataset, image_size
