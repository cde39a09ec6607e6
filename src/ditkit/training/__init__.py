"""The training engine: ``train(TrainConfig(...))`` or ``ditkit train``; single process or torchrun.

- ``config``: ``TrainConfig``: every knob, with its CLI help; one ``DiffusionConfig``
- ``recipes``: ``RECIPES`` (``--recipe dit|fast``): presets under explicit flags, resolved into train_config.json
- ``build``: everything before the first step: data, model, wrappers, fused AdamW (or ``bf16_moments``' AdamW with
  bf16 moments), the resumed state, the run folder
- ``optimizer_in_backward``: AdamW stepped tensor by tensor inside backward, gradients freed at once
- ``state``: ``TrainState``: model, EMA, optimizer, step, data position, RNG — saved/restored as one folder
- ``step``: ``train_step``; the loss is a pluggable ``objective(net, batch_dict, generator) -> per-sample
  losses``, default ``DiffusionObjective``
- ``hooks``: every N steps: log, checkpoint, sample grid, evaluation (``trainer`` builds the run's own before its
  folder is written: FID for class runs, ``eval_fn`` of text runs and families)
- ``trainer``: the loop
- ``ema``, ``data_order``: the EMA weights; resumable sharded batch order
- ``outputs``: metrics.jsonl, TensorBoard, sample grids, the loss curve
- ``dispersive``: the dispersive loss (a block's states spread within the batch; ``--dispersive-loss``)
- ``text``: ``--text-encoder`` runs: ``open_text_data``, ``TextTraining`` (frozen encoder + cache, the model's
  text fields, checkpoint ``extra.text_encoder``), ``TextObjective``, captioned grids, ``eval_fn``
  (``evaluation.text_to_image.sample_and_score`` on shapes, else FID of caption samples)
- ``families``: ``FAMILIES``: non-DiT models trained by the same loop (``--model caption-decoder``, ``uvit-*``);
  ``family_for``. A family gives the data, model config, module, objective, progress output, ``eval_fn`` and
  ``export``
- ``unidiffuser_run``, ``unidiffuser_objective``, ``uni_text_table``: UniDiffuser's two families, its objective,
  and ``--text-cache`` (every caption's frozen text tokens encoded once, in fixed chunks)
"""

from .state import TrainState, list_checkpoints, load_checkpoint, resolve_resume
from .step import DiffusionObjective, StepSettings, train_step
from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "TrainState", "train", "train_step", "DiffusionObjective", "StepSettings",
           "list_checkpoints", "load_checkpoint", "resolve_resume"]
