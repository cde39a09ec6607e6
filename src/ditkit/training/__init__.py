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
  folder is written: its family's ``eval_fn``)
- ``trainer``: the loop (the same for every run family: it asks the family, never which one it is)
- ``ema``, ``data_order``: the EMA weights; resumable sharded batch order
- ``outputs``: metrics.jsonl, TensorBoard, sample grids, the loss curve
- ``dispersive``: the dispersive loss (a block's states spread within the batch; ``--dispersive-loss``)
- ``families``: the ``RunFamily`` protocol (the data, model config, module, ``--init-from``, objective, checkpoint
  ``extra`` and export, progress hook, ``eval_fn``, cache) and ``FAMILIES``, the four that implement it;
  ``family_for(config)`` picks one for every run. A new family = one new file plus one line there
- ``class_dit``: ``ClassDiTRun``, a DiT on labels (or unconditional): the default family; FID as its evaluation
- ``text``: ``--text-encoder`` runs: ``TextTraining`` (the text DiT family: frozen encoder + cache, the model's
  text fields, checkpoint ``extra.text_encoder``), ``TextObjective``, captioned grids, ``eval_fn``
  (``evaluation.text_to_image.sample_and_score`` on shapes, else FID of caption samples)
- ``unidiffuser_run``, ``unidiffuser_objective``, ``uni_text_table``: UniDiffuser's two families (``--model
  caption-decoder``, ``uvit-*``), its objective, and ``--text-cache`` (every caption's frozen text tokens encoded
  once, in fixed chunks)
"""

from .state import TrainState, list_checkpoints, load_checkpoint, resolve_resume
from .step import DiffusionObjective, StepSettings, train_step
from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "TrainState", "train", "train_step", "DiffusionObjective", "StepSettings",
           "list_checkpoints", "load_checkpoint", "resolve_resume"]
