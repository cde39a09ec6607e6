"""Run families: what differs between the models ``ditkit train`` trains; the loop (``trainer.py``) is the same
for all of them and asks the run's family, never which family it is.

``family_for(config)`` returns a new instance of the first family in ``FAMILIES`` that ``claims`` the config; the
class DiT, last, claims every run. A new family = one new file (a class that implements ``RunFamily``) plus one
line in ``FAMILIES``, above the class DiT.
"""

from __future__ import annotations

from typing import Callable, Protocol

from torch import nn

from .build import Data
from .class_dit import ClassDiTRun
from .text import TextTraining
from .unidiffuser_run import CaptionDecoderRun, UniDiffuserRun


class RunFamily(Protocol):
    """What the loop needs from a run, in the order it asks (``config`` is the run's ``TrainConfig``, ``d`` its
    ``Dist``, ``resumed`` the checkpoint being resumed or None). ``family(config)`` checks the config (a
    DitkitError before anything is built) and builds nothing yet."""

    name: str          # in messages ("--dispersive-loss applies to DiT runs, not to a uvit run")
    trains_dit: bool   # the module is a ditkit DiT (--dispersive-loss reads its blocks)
    # how a checkpoint's EMA is written so that it loads elsewhere: export(ema, folder, extra); None writes a
    # ditkit DiT folder (``state.py``: config.json with the model, process, codec, class names and ``extra``)
    export: Callable[[nn.Module, str, dict], None] | None

    @classmethod
    def claims(cls, config) -> bool:
        """Whether this family trains ``config`` (``--model``, ``--text-encoder``)."""

    def open(self, config, d) -> Data:
        """The training set as the loop's ``Data`` (dataset, codec, the model's input shape)."""

    def model_config(self, config, resumed):
        """The model config stored in checkpoints (``.to_dict()``, ``.learn_sigma``); on resume it must be the
        checkpoint's (a DitkitError otherwise)."""

    def create_model(self, model_config) -> nn.Module:
        """The module the optimizer trains (called under the run's seed, before it moves to the device)."""

    def load_init(self, model: nn.Module, config, resumed) -> list[str]:
        """``--init-from`` weights loaded into ``model`` where the family does it here; notes for the run log."""

    def objective(self, diffusion):
        """The loss: ``objective(net, batch, generator) -> {"loss": per-sample, ...}`` (``step.py``)."""

    def extra(self) -> dict:
        """Stored in every checkpoint's ``extra`` (e.g. the text encoder that rebuilds the conditioning)."""

    def grid_hook(self, run_dir: str, codec, config):
        """The ``--sample-every`` progress hook (rank 0): a sample grid, decoded captions, ..."""

    def eval_fn(self, config, data: Data):
        """What ``--fid-every`` measures: ``eval_fn(ema, step) -> dict`` of numbers (rank 0)."""

    def save_cache(self) -> None:
        """Called at each checkpoint and at the end (rank 0): write what the run cached, if it grew."""


FAMILIES: dict[str, type[RunFamily]] = {  # the first that claims a config trains it
    "caption-decoder": CaptionDecoderRun,   # --model caption-decoder: UniDiffuser's decoder (unidiffuser_run.py)
    "uvit": UniDiffuserRun,                 # --model uvit-*: UniDiffuser's U-ViT (unidiffuser_run.py)
    "text-dit": TextTraining,               # --text-encoder: a text DiT (text.py)
    "class-dit": ClassDiTRun,               # any other run: a class DiT (class_dit.py)
}


def family_for(config) -> RunFamily:
    """The run family that trains ``config`` (a new instance)."""
    return next(family(config) for family in FAMILIES.values() if family.claims(config))  # ClassDiTRun: any
