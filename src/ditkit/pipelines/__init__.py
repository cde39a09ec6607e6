"""Sampling pipelines: a model + diffusion + sampler + guidance + codec → images.

``generate`` draws samples in memory (used by training's FID hook and by library users);
``sample_to_folder`` is ``ditkit sample``: a resumable, torchrun-aware PNG / npz writer.
"""

from .folder import SampleSettings, sample_to_folder
from .generate import SAMPLERS, GeneratedSamples, generate, generate_batches, sample_seed
from .labels import classes_to_labels, resolve_labels
from .settings import SamplingSettings
from .images import make_grid, write_npz
from .loading import DEFAULT_VAE, default_checkpoint, load_codec, load_for_sampling

__all__ = [
    "DEFAULT_VAE", "SAMPLERS", "GeneratedSamples", "SampleSettings", "SamplingSettings", "classes_to_labels",
    "default_checkpoint", "resolve_labels",
    "generate", "generate_batches", "load_codec", "load_for_sampling", "make_grid", "sample_seed",
    "sample_to_folder", "write_npz",
]
