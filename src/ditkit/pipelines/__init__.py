"""Sampling pipelines: a model + process + sampler + guidance + codec → images (and UniDiffuser's modes).

``generate`` draws samples in memory (used by training's FID hook and by library users);
``sample_to_folder`` is ``ditkit sample``: a resumable, torchrun-aware PNG / npz writer.

- ``settings``: ``SamplingConfig``: the user-facing sampling knobs, declared once (the flags of ``sample``, ``uni``,
  ``t2i-eval``, ``uni-eval``, the app's inputs, the recorded commands); ``SamplingSettings``: every knob of the
  pipeline, resolved
- ``generate``: ``generate(model, settings, codec=...)`` / ``generate_batches``: batches sized to the request,
  inference mode, the network in fp32 or under bf16 autocast per ``precision``
- ``labels``: class names → labels, checked against the model
- ``text``: text models: ``check_conditioning``, ``load_text_codec`` (the checkpoint's ``extra.text_encoder``),
  ``PromptPlan`` (each sample's prompt; null text or negative prompt for guidance), ``read_prompts_file``,
  ``captioned_grid``
- ``loading``: the model and codec to sample with: the bundled default, a checkpoint, a ``--vae`` override
- ``dit``: ``DiTPipeline`` (``load``, ``generate(settings)``, ``save``): a DiT checkpoint with its codec, text
  encoder, process and recorded sampling — ``UniDiffuser``'s shape; ``load_pipeline``: any checkpoint as the
  pipeline it is (``ditkit.load``)
- ``images``: PNGs, grids, the ADM evaluation ``.npz``
- ``folder``: ``sample_to_folder`` (``ditkit sample``): a self-describing, resumable output folder
- ``unidiffuser``: ``UniDiffuser``: U-ViT + caption decoder + codec + frozen text / image encoders;
  ``generate(mode, ...)`` with input checks; save/load (our folder) and ``from_official``
- ``uni_folder``: ``write_uni_folder``: ``ditkit uni``'s output folder (atomic, run.json)
- ``uni_figure``: ``draw_modes``: every mode in one figure, from a model or from output folders
"""

from .folder import SampleSettings, sample_to_folder
from .generate import SAMPLERS, GeneratedSamples, generate, generate_batches, sample_seed
from .labels import classes_to_labels, resolve_labels
from .settings import SamplingConfig, SamplingSettings
from .images import make_grid, write_npz
from .loading import DEFAULT_VAE, LoadedModel, default_checkpoint, load_codec, load_for_sampling
from .dit import DiTPipeline, load_pipeline

__all__ = [
    "DEFAULT_VAE", "SAMPLERS", "DiTPipeline", "GeneratedSamples", "LoadedModel", "SampleSettings", "SamplingConfig", "SamplingSettings",
    "classes_to_labels", "default_checkpoint", "resolve_labels",
    "generate", "generate_batches", "load_codec", "load_for_sampling", "load_pipeline", "make_grid", "sample_seed",
    "sample_to_folder", "write_npz",
]
