"""Run families: models other than the DiT that ``ditkit train`` trains with the same engine.

``family_for(config)`` picks one from ``--model`` (a name or a name prefix in ``FAMILIES``); None means the
DiT path of ``build.py``. A family provides ``open(config, d) -> Data``, ``model_config(config, resumed)``,
``create_model(model_config)``, ``objective(diffusion)``, ``export(ema, folder, extra)`` (how a checkpoint's
EMA is written so that it loads elsewhere), ``grid_hook(run_dir, codec, config)``, ``eval_fn(config, data)``
(what ``--fid-every`` measures), ``extra()`` and ``save_cache()``. A new family = one new file plus a line here.
"""

from __future__ import annotations

from .unidiffuser_run import CaptionDecoderRun, UniDiffuserRun

FAMILIES = {  # --model prefix → the run family that trains it
    "uvit": UniDiffuserRun,                 # UniDiffuser's U-ViT (unidiffuser_run.py)
    "caption-decoder": CaptionDecoderRun,   # UniDiffuser's caption decoder, trained first
}


def family_for(config):
    """The run family for ``config.model`` (a new instance), or None for a DiT."""
    model = str(config.model)
    for prefix, family in FAMILIES.items():
        if model == prefix or model.startswith(prefix + "-"):
            return family(config)
    return None
