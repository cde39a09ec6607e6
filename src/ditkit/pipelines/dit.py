"""``DiTPipeline``: a DiT checkpoint ready to sample — the model with its codec, text encoder, diffusion settings,
class names and recorded sampling — in ``UniDiffuser``'s shape (``load``, ``generate(settings)``, ``save``); and
``load_pipeline``, which opens any checkpoint as the pipeline it is (``ditkit.load``).

    pipe = DiTPipeline.load("mnist-dit")               # a bundled name, our folder, an official .pt, a diffusers folder
    out = pipe.generate(labels=[3, 5], seed=0)         # the checkpoint's recorded sampler, steps and guidance
    out = pipe.generate(SamplingSettings(labels=(3,), sampler="ddim", steps=25))   # exactly these settings
    pipe.save("my-model")                              # our folder: loads back to the same samples
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..diffusion import DiffusionConfig
from ..errors import DitkitError
from .generate import GeneratedSamples, generate
from .loading import LoadedModel, load_codec, load_for_sampling
from .settings import SamplingSettings, recorded_sampling
from .text import is_text_model, load_text_codec


@dataclass
class DiTPipeline(LoadedModel):
    """A loaded DiT (a ``LoadedModel``: model, checkpoint, diffusion config, codec config, class names, text encoder
    config, recorded sampling, extra) with the codec that decodes its samples (None: latents only) and, for a text
    model, its frozen text encoder."""

    codec: object = None
    text_codec: object = None

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, *, device="cpu", vae: str | None = None,
             **config_overrides) -> "DiTPipeline":
        """Open a ditkit folder, a bundled name, an official ``.pt`` file or name, a diffusers folder, or (None) the
        bundled default. ``vae`` overrides the checkpoint's codec ("none": sample latents only);
        ``config_overrides`` (e.g. ``num_heads=4``) fill in what official files cannot store."""
        return cls.from_loaded(load_for_sampling(checkpoint, device=device, **config_overrides), vae=vae,
                               device=device)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, *, vae: str | None = None, device="cpu") -> "DiTPipeline":
        """A ``LoadedModel`` with its codec (``load_codec``) and, for a text model, its text encoder."""
        codec = load_codec(loaded, vae, device=device)
        model = loaded.model
        text_codec = load_text_codec(loaded.text_encoder_config, model, device=device) if is_text_model(model) else None
        fields = {name: getattr(loaded, name) for name in LoadedModel.__dataclass_fields__}
        return cls(**fields, codec=codec, text_codec=text_codec)

    @property
    def process(self) -> str:
        """The process family the model was trained on (``ddpm``, ``flow``)."""
        return DiffusionConfig.from_dict(self.diffusion_config).process

    def sampling_settings(self, **changes) -> SamplingSettings:
        """``changes`` over how the checkpoint records it samples best (sampler, steps, guidance; else the registry's
        defaults for its process and no guidance)."""
        sampler, steps, cfg = recorded_sampling(self.sampling, self.process, sampler=changes.pop("sampler", None),
                                                steps=changes.pop("steps", None),
                                                cfg_scale=changes.pop("cfg_scale", None))
        return SamplingSettings.build(sampler=sampler, steps=steps, cfg_scale=cfg, **changes)

    def generate(self, settings: SamplingSettings | None = None, *, progress: bool = True, callback=None,
                 sample_indices=None, device=None, **changes) -> GeneratedSamples:
        """Sample (``pipelines.generate`` with this checkpoint's codec, text encoder and process). Without
        ``settings``, the keywords (``labels``, ``prompts``, ``num_samples``, ``seed``, ...) over the checkpoint's
        recorded sampling (``sampling_settings``); with ``settings``, exactly those (keywords override fields)."""
        if settings is None:
            settings, changes = self.sampling_settings(**changes), {}
        return generate(self.model, settings, codec=self.codec, diffusion_config=self.diffusion_config, device=device,
                        progress=progress, sample_indices=sample_indices, text_codec=self.text_codec,
                        callback=callback, **changes)

    def save(self, path, *, extra: dict | None = None) -> Path:
        """Write our checkpoint folder (atomic; ``checkpoints.save_pretrained``): the model, the codec it decodes
        with, the diffusion settings, class names, text encoder and recorded sampling; ``extra`` adds to the
        checkpoint's own."""
        from ..checkpoints import save_pretrained

        codec = self.codec.to_config() if self.codec is not None else self.codec_config
        record = {**self.extra, **({"text_encoder": self.text_encoder_config} if self.text_encoder_config else {}),
                  **({"sampling": dict(self.sampling)} if self.sampling else {}), **(extra or {})}
        return save_pretrained(self.model, path, diffusion=self.diffusion_config, codec=codec,
                               class_names=self.class_names, extra=record)


def load_pipeline(checkpoint: str | Path | None = None, *, device="cpu", **options):
    """Any checkpoint as the pipeline it is: a UniDiffuser folder or bundled name → ``UniDiffuser``; anything else a
    DiT loads from (None: the bundled default) → ``DiTPipeline`` (``options``: ``DiTPipeline.load``'s)."""
    from ..checkpoints.unidiffuser import is_unidiffuser_folder

    if checkpoint is not None and is_unidiffuser_folder(checkpoint):
        from .unidiffuser import UniDiffuser

        if options:
            raise DitkitError(f"{checkpoint} is a UniDiffuser checkpoint: it takes no {', '.join(sorted(options))}")

        return UniDiffuser.load(checkpoint, device=device)
    return DiTPipeline.load(checkpoint, device=device, **options)
