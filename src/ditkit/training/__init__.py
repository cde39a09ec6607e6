"""The training engine: ``train(TrainConfig(...))`` or ``ditkit train``; single process or torchrun."""

from .state import TrainState, list_checkpoints, load_checkpoint, resolve_resume
from .step import DiffusionObjective, StepSettings, train_step
from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "TrainState", "train", "train_step", "DiffusionObjective", "StepSettings",
           "list_checkpoints", "load_checkpoint", "resolve_resume"]
