"""Named training recipes: presets over ``TrainConfig``'s defaults (``ditkit train --recipe NAME``).

A recipe sets fields; flags given explicitly override it; the resolved values land in ``train_config.json``
(with the recipe's name), so a run replays without the preset. ``dit`` is the paper's recipe (the defaults).
``fast`` is the best combination measured on 2 CPU cores (docs/recipe.md): rectified flow with logit-normal
times (SiT; SD3), AdamW β2 0.95 with a higher lr after a short warm-up (LightningDiT), an EMA of 0.999 with
warm-up for short runs.
"""

from __future__ import annotations

RECIPES: dict[str, dict] = {
    "dit": {},
    "fast": {
        "diffusion": {"process": "flow", "time_sampling": "logit-normal"},
        "lr": 2e-3, "adam_beta2": 0.95, "warmup_steps": 200, "ema_decay": 0.999, "ema_warmup": True,
    },
}


def recipe_values(name: str, explicit: dict) -> dict:
    """The recipe's values with ``explicit`` ones over them (``diffusion`` merged field by field)."""
    from ..errors import DitkitError

    if name not in RECIPES:
        raise DitkitError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    preset = RECIPES[name]
    values = {**preset, **explicit, "recipe": name}
    values["diffusion"] = {**preset.get("diffusion", {}), **explicit.get("diffusion", {})}
    return values
