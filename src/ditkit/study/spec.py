"""A study file (TOML): the dataset, the grid of cells, the budget per cell, the evaluation schedule, seeds.

    [study]   name, data ("mnist", "shapes" or an image folder), image_size, seeds = [0], vae = "none"
    [train]   any TrainConfig option shared by every cell (global_batch_size, lr, ema_decay, ...)
    [budget]  steps = 400; optional minutes (wall-clock per cell) or compute (training Gflops per cell)
    [eval]    every (steps), samples, sampler, steps, cfg, extractor
    [sizes]   named sizes: NAME = {hidden_size = 64, depth = 4, num_heads = 2}  (S, B, L, XL are built in)
    [[grid]]  sizes × patch_sizes × blocks (or models = ["DiT-S/2", ...]) × any other option given as a list

Every problem is found before anything runs and reported as one DitkitError sentence. Cells from different
``[[grid]]`` tables that come out identical are run once (so a block comparison can share a cell with the size
grid); two identical cells within one table are an error.
"""

from __future__ import annotations

import itertools
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from ..diffusion import SAMPLERS as SAMPLER_REGISTRY
from ..diffusion import DiffusionConfig
from ..errors import DitkitError
from ..models import BLOCKS, preset_config, resolve_config
from ..models.flops import count_flops, count_params
from ..training import TrainConfig
from ..training.recipes import recipe_values

SECTIONS = ("study", "train", "budget", "eval", "sizes", "grid")
STUDY_KEYS = ("name", "data", "image_size", "seeds", "vae", "description")
BUDGET_KEYS = ("steps", "minutes", "compute")
EVAL_KEYS = ("every", "samples", "sampler", "steps", "cfg", "extractor", "batch_size")
SIZE_KEYS = ("hidden_size", "depth", "num_heads", "mlp_ratio")
GRID_MODEL_KEYS = ("sizes", "models", "patch_sizes", "blocks")
MODEL_OPTIONS = ("mlp_ratio", "class_dropout_prob", "learn_sigma", "mlp", "norm", "qk_norm", "rope",
                 "long_skips")  # DiTConfig fields a grid may vary
# DiffusionConfig fields a grid may vary by their own names (time_shift = [1.0, 3.0]); learn_sigma is the model's
DIFFUSION_OPTIONS = tuple(name for name in DiffusionConfig.__dataclass_fields__ if name != "learn_sigma")
# TrainConfig fields the study itself sets for every cell (they cannot be options).
STUDY_OWNED = ("data", "image_size", "vae", "model", "model_overrides", "max_steps", "out", "resume", "seed",
               "progress", "threads", "init_from", "fid_every", "fid_samples")
SAMPLERS = tuple(SAMPLER_REGISTRY)
BUNDLED = ("mnist", "shapes")


@dataclass
class Cell:
    """One training run of the study: its settings, resolved model and cost."""

    name: str
    axes: dict[str, Any]                 # what varies across the grid: size, patch_size, block, seed, ...
    train: dict[str, Any]                # TrainConfig fields (out/resume/threads are set when it runs)
    model_config: dict[str, Any]         # the resolved DiTConfig
    gflops: float                        # forward MACs per image / 1e9 (the paper's "Gflops")
    params: int
    max_steps: int
    minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class StudySpec:
    name: str
    data: str
    image_size: int
    seeds: list[int]
    vae: str
    train: dict[str, Any]
    budget: dict[str, Any]
    eval: dict[str, Any]
    cells: list[Cell] = field(default_factory=list)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cells"}
        d["cells"] = [c.to_dict() for c in self.cells]
        return d


def load_spec(path: str | os.PathLike) -> StudySpec:
    """Read and validate a study file; returns the spec with every cell expanded."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise DitkitError(f"study file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DitkitError(f"cannot read the study file {path}: {exc}") from None
    spec = parse_spec(raw, default_name=os.path.splitext(os.path.basename(path))[0])
    spec.source = os.path.abspath(path)
    return spec


def parse_spec(raw: dict[str, Any], default_name: str = "study") -> StudySpec:
    """Validate a study given as a dict (the parsed TOML) and expand its grid into cells."""
    _check_keys(raw, SECTIONS, "the study file")
    study = _table(raw, "study")
    _check_keys(study, STUDY_KEYS, "[study]")
    data = study.get("data")
    if not isinstance(data, str) or not data:
        raise DitkitError("[study] needs data = \"mnist\", \"shapes\" or an image folder")
    if data not in BUNDLED and not os.path.isdir(data):
        raise DitkitError(f"unknown dataset {data!r}: expected {', '.join(BUNDLED)} or an existing image folder")
    image_size = _positive_int(study.get("image_size", 32 if data in BUNDLED else 256), "[study] image_size")
    seeds = study.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise DitkitError("[study] seeds must be a non-empty list of integers ≥ 0, e.g. seeds = [0]")
    if len(set(seeds)) != len(seeds):
        raise DitkitError(f"[study] seeds lists a seed twice: {seeds}")
    vae = str(study.get("vae", "none"))
    train = _table(raw, "train")
    _check_train_options(train, "[train]")
    budget = _parse_budget(_table(raw, "budget"))
    evaluation = _parse_eval(_table(raw, "eval"), budget)
    spec = StudySpec(str(study.get("name", default_name)), data, image_size, seeds, vae, train, budget, evaluation)
    sizes = _parse_sizes(_table(raw, "sizes"))
    grids = raw.get("grid")
    if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) for g in grids):
        raise DitkitError("the study file needs at least one [[grid]] table")
    channels, num_classes = _data_shape(data, image_size)
    seen: dict[str, Cell] = {}
    for index, grid in enumerate(grids, 1):
        for cell in _expand_grid(spec, grid, index, sizes, channels, num_classes):
            seen.setdefault(_identity(cell), cell)
    spec.cells = list(seen.values())
    names = [c.name for c in spec.cells]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise DitkitError(f"two different cells would both be named {dup!r}; give the sizes distinct names")
    return spec


# -- sections ---------------------------------------------------------------------------------

def _table(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise DitkitError(f"[{name}] must be a table")
    return value


def _check_keys(table: dict, allowed, where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise DitkitError(f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: {', '.join(unknown)} "
                          f"(allowed: {', '.join(allowed)})")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DitkitError(f"{what} must be a positive integer, got {value!r}")
    return value


def _train_option_names() -> list[str]:
    return [f.name for f in fields(TrainConfig) if f.name not in STUDY_OWNED]


def _check_train_options(options: dict, where: str) -> None:
    allowed = _train_option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        owned = [k for k in unknown if k in STUDY_OWNED]
        hint = (f" ({', '.join(owned)} {'is' if len(owned) == 1 else 'are'} set by the study itself)" if owned
                else "")
        raise DitkitError(f"unknown training option{'s' if len(unknown) > 1 else ''} in {where}: "
                          f"{', '.join(unknown)}{hint}")


def _parse_budget(budget: dict) -> dict:
    _check_keys(budget, BUDGET_KEYS, "[budget]")
    if "steps" not in budget and "compute" not in budget:
        raise DitkitError("[budget] needs steps (optimizer steps per cell) or compute (training Gflops per cell)")
    out = {}
    if "steps" in budget:
        steps = budget["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise DitkitError(f"the budget must be at least 1 step per cell, got steps = {steps!r}")
        out["steps"] = steps
    for key, unit in (("minutes", "minutes of wall-clock"), ("compute", "training Gflops")):
        if key in budget:
            value = budget[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise DitkitError(f"the budget of {unit} per cell must be positive, got {key} = {value!r}")
            out[key] = float(value)
    if "steps" in out and "compute" in out:
        raise DitkitError("[budget] takes steps or compute, not both (compute sets each cell's steps)")
    return out


def _parse_eval(evaluation: dict, budget: dict) -> dict:
    _check_keys(evaluation, EVAL_KEYS, "[eval]")
    out = {"every": evaluation.get("every", 0), "samples": evaluation.get("samples", 1000),
           "sampler": evaluation.get("sampler", "ddim"), "steps": evaluation.get("steps", 50),
           "cfg": evaluation.get("cfg", 1.0), "extractor": evaluation.get("extractor", "auto"),
           "batch_size": evaluation.get("batch_size", 64)}
    if isinstance(out["every"], bool) or not isinstance(out["every"], int) or out["every"] < 0:
        raise DitkitError(f"[eval] every must be a number of steps ≥ 0 (0: no FID), got {out['every']!r}")
    for key in ("samples", "steps", "batch_size"):
        _positive_int(out[key], f"[eval] {key}")
    if out["samples"] < 2:
        raise DitkitError(f"[eval] samples must be at least 2 for a FID, got {out['samples']}")
    if out["sampler"] not in SAMPLERS:
        raise DitkitError(f"[eval] sampler must be one of {', '.join(SAMPLERS)}, got {out['sampler']!r}")
    if isinstance(out["cfg"], bool) or not isinstance(out["cfg"], (int, float)) or out["cfg"] < 1:
        raise DitkitError(f"[eval] cfg (the guidance scale) must be a number ≥ 1, got {out['cfg']!r}")
    if "minutes" in budget and not out["every"]:
        raise DitkitError("a wall-clock budget is checked at each evaluation: set [eval] every as well")
    return out


def _parse_sizes(sizes: dict) -> dict[str, dict]:
    out = {}
    for name, size in sizes.items():
        if not isinstance(size, dict):
            raise DitkitError(f"[sizes] {name} must be a table like {{hidden_size = 64, depth = 4, num_heads = 2}}")
        _check_keys(size, SIZE_KEYS, f"[sizes] {name}")
        missing = [k for k in ("hidden_size", "depth", "num_heads") if k not in size]
        if missing:
            raise DitkitError(f"[sizes] {name} needs {', '.join(missing)}")
        out[name] = dict(size)
    return out


def _data_shape(data: str, image_size: int) -> tuple[int, int]:
    """Image channels and class count of the training data (opened once, before any cell runs)."""
    from ..data import load_dataset

    dataset = load_dataset(data, image_size=image_size, split="train")
    return dataset.channels, dataset.num_classes


# -- the grid ---------------------------------------------------------------------------------

def _size_of(name: str, sizes: dict[str, dict]) -> dict:
    if name in sizes:
        return sizes[name]
    try:
        preset = preset_config(f"DiT-{name}/2")
    except DitkitError:
        known = list(sizes) + ["S", "B", "L", "XL"]
        raise DitkitError(f"unknown model size {name!r}: define it under [sizes] or use one of "
                          f"{', '.join(known)}") from None
    return {k: v for k, v in preset.items() if k != "patch_size"}


def _model_axis(grid: dict, where: str, sizes: dict) -> list[tuple[str, dict, int]]:
    """(size name, size dict, patch size) for every model of a grid table."""
    if "models" in grid:
        if "sizes" in grid or "patch_sizes" in grid:
            raise DitkitError(f"{where}: give models = [...] or sizes × patch_sizes, not both")
        out = []
        for model in _as_list(grid["models"], f"{where} models"):
            try:
                preset = preset_config(str(model))
            except DitkitError:
                raise DitkitError(f"unknown model {model!r} in {where}: expected a name like DiT-S/2 "
                                  "(sizes S, B, L, XL; patches 2, 4, 8)") from None
            size = str(model).split("-", 1)[1].replace("/", "-").rsplit("-", 1)[0].upper()
            out.append((size, {k: v for k, v in preset.items() if k != "patch_size"}, preset["patch_size"]))
        return out
    names = _as_list(grid.get("sizes", []), f"{where} sizes")
    if not names:
        raise DitkitError(f"{where} needs sizes = [...] (names under [sizes], or S, B, L, XL) or models = [...]")
    patches = _as_list(grid.get("patch_sizes", [2]), f"{where} patch_sizes")
    return [(str(n), _size_of(str(n), sizes), p) for n in names for p in patches]


def _as_list(value, where: str) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise DitkitError(f"{where} is an empty list")
    return values


def _expand_grid(spec: StudySpec, grid: dict, index: int, sizes: dict, channels: int, num_classes: int):
    where = f"[[grid]] #{index}"
    allowed = list(GRID_MODEL_KEYS) + list(MODEL_OPTIONS) + list(DIFFUSION_OPTIONS) + _train_option_names()
    _check_keys_grid(grid, allowed, where)
    models = _model_axis(grid, where, sizes)
    blocks = _as_list(grid.get("blocks", ["adaln-zero"]), f"{where} blocks")
    for block in blocks:
        if block not in BLOCKS:
            raise DitkitError(f"unknown block {block!r} in {where}: expected one of {', '.join(BLOCKS)}")
    extra = {k: _as_list(v, f"{where} {k}") for k, v in grid.items() if k not in GRID_MODEL_KEYS}
    downsample = 1 if spec.vae.strip().lower() in ("none", "pixel") else 8  # the SD VAE: 4 channels, /8
    channels = channels if downsample == 1 else 4
    input_size = spec.image_size // downsample
    if spec.image_size % downsample:
        raise DitkitError(f"image size {spec.image_size} is not a multiple of the VAE's factor {downsample}")
    cells, identities = [], set()
    for (size_name, size, patch), block, combo, seed in itertools.product(
            models, blocks, itertools.product(*extra.values()), spec.seeds):
        if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or input_size % patch:
            raise DitkitError(f"patch size {patch!r} in {where} does not divide the {input_size}x{input_size} "
                              f"model input ({spec.image_size} px" + (f" / {downsample}" if downsample > 1 else "")
                              + ")")
        options = dict(zip(extra, combo))
        cell = _make_cell(spec, size_name, size, patch, block, options, seed, input_size, channels, num_classes)
        key = _identity(cell)
        if key in identities:
            raise DitkitError(f"duplicate cells in {where}: {cell.name} appears twice (a value is repeated, or "
                              "two sizes are the same model)")
        identities.add(key)
        cells.append(cell)
    return cells


def _check_keys_grid(grid: dict, allowed: list[str], where: str) -> None:
    unknown = sorted(set(grid) - set(allowed))
    if unknown:
        raise DitkitError(f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: {', '.join(unknown)} "
                          "(a grid takes sizes, models, patch_sizes, blocks, and any training option as a list)")


def _make_cell(spec, size_name, size, patch, block, options, seed, input_size, channels, num_classes) -> Cell:
    model_options = {k: v for k, v in options.items() if k in MODEL_OPTIONS}
    diffusion_options = {k: v for k, v in options.items() if k in DIFFUSION_OPTIONS}
    train_options = {k: v for k, v in options.items() if k not in MODEL_OPTIONS and k not in DIFFUSION_OPTIONS}
    train = dict(spec.train, **train_options)
    train["diffusion"] = {**train.get("diffusion", {}), **diffusion_options}
    try:  # a recipe (the paper's by default) fills what the study leaves unset; the cell records the result
        train = recipe_values(train.pop("recipe", "dit"), train)
    except DitkitError as exc:
        raise DitkitError(f"size {size_name} with patch {patch}: {exc}") from None
    if train["diffusion"].get("process") == "flow":  # as the trainer builds it: a flow model has no variance
        model_options.setdefault("learn_sigma", False)
    overrides = dict(size, patch_size=patch, block=block, **model_options)
    try:
        model_config = resolve_config("DiT-S/2", **overrides, input_size=input_size, in_channels=channels,
                                      num_classes=num_classes)
    except (DitkitError, TypeError) as exc:
        raise DitkitError(f"size {size_name} with patch {patch}: {exc}") from None
    name = f"{size_name}-p{patch}-{block}" + "".join(f"-{_short(k)}{_fmt(v)}" for k, v in options.items())
    if len(spec.seeds) > 1:
        name += f"-seed{seed}"
    gflops = count_flops(model_config) / 1e9
    steps = spec.budget.get("steps")
    if steps is None:  # an equal-compute study: Gflops × 3 (forward + backward) × images seen
        batch = train.get("global_batch_size", TrainConfig.global_batch_size)
        steps = max(1, math.floor(spec.budget["compute"] / (gflops * 3 * batch)))
    cell = Cell(name=name, axes={"size": size_name, "patch_size": patch, "block": block, **options, "seed": seed},
                train=dict(train, data=spec.data, image_size=spec.image_size, vae=spec.vae, model="DiT-S/2",
                           model_overrides=overrides, max_steps=steps, seed=seed, progress=False),
                model_config=model_config.to_dict(), gflops=gflops, params=count_params(model_config),
                max_steps=steps, minutes=spec.budget.get("minutes"))
    try:
        TrainConfig.from_dict(dict(cell.train, out="."))
    except TypeError as exc:
        raise DitkitError(f"cell {name}: {exc}") from None
    except DitkitError as exc:
        raise DitkitError(f"cell {name}: {exc}") from None
    return cell


def _short(key: str) -> str:
    return "".join(part[0] for part in key.split("_"))


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _identity(cell: Cell) -> str:
    import json

    return json.dumps({"model": cell.model_config, "train": cell.train}, sort_keys=True, default=str)
