"""The training engine: ``train(TrainConfig(...))`` or ``ditkit train``; single process or torchrun."""

from .state import list_checkpoints, load_checkpoint, resolve_resume
from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "train", "list_checkpoints", "load_checkpoint", "resolve_resume"]
