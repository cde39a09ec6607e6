"""Sampling into a self-describing, resumable output folder — single process or under ``torchrun``.

Layout of ``out/``::

    run.json                    settings, model config, ditkit version, a command that reproduces it
    samples/000000_class3.png   one PNG per sample (decoded runs)
    latents/000000_class3.safetensors   one latent per sample (``vae="none"``)
    grid.png | latents.safetensors, and samples.npz (ADM format) when asked

Ranks take disjoint shares of the sample indices still missing; since every sample depends only on
(seed, index), re-running the same command fills in what is missing and skips the rest. After a
barrier, rank 0 gathers the per-sample files into the grid / npz / latents file.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from ..diffusion import DiffusionConfig
from ..errors import DitkitError
from ..version import __version__
from ..distributed import process_group
from ..fileio import atomic_write, atomic_write_json, check_writable
from ..precision import resolve_precision
from .generate import effective_diffusion_config, generate_batches, plan_sampling
from .images import make_grid, read_png, save_png, write_npz
from .labels import classes_to_labels
from .dit import DiTPipeline
from .loading import load_for_sampling
from .settings import SamplingConfig, SamplingSettings, recorded_sampling
from .text import captioned_grid, check_conditioning, is_text_model

# What a run writes at the top of its folder: an existing one of these without our run.json is the user's.
OUTPUT_NAMES = ("grid.png", "samples.npz", "latents.safetensors", "captions.txt")
_SAMPLE_NAME = re.compile(r"^(\d+)(?:_class(\d+))?\.(png|safetensors)$")


@dataclass(frozen=True)
class SampleSettings:
    """Everything that decides which images a run makes (and so must match when resuming)."""

    checkpoint: str | None = None  # None: the bundled default model
    classes: tuple[int | str, ...] | None = None  # numbers or the checkpoint's class names; None: every class
    num_samples: int | None = None
    sampler: str | None = None  # None: the checkpoint's recorded sampler, else its process's default
    steps: int | None = None  # None: the recorded steps (for the recorded sampler), else the sampler's default
    cfg_scale: float | None = None  # None: the checkpoint's recorded guidance scale, else 1 (none)
    guided_channels: int | None = None
    seed: int = SamplingConfig.default("seed")
    vae: str | None = None  # None: the checkpoint's codec; "none": keep raw latents
    num_heads: int | None = None  # official checkpoints do not store it; None: inferred
    eta: float | None = None  # DDIM's noise (None: the sampler's default, 0)
    prompts: tuple[str, ...] | None = None  # text models: sample i gets prompt i mod P
    negative_prompt: str | None = None  # text models: guide away from it instead of the null text
    precision: str = SamplingConfig.default("precision")  # fp32, bf16 or auto (resolved for the device)

    def resolved_for(self, loaded, fallback: dict | None = None) -> "SampleSettings":
        """Sampler, steps and guidance filled in: the given ones, else what the checkpoint records it samples
        best with (``LoadedModel.sampling``), else ``fallback`` (a caller's protocol, e.g. t2i-eval's), else the
        registry's defaults for its process; ``auto`` precision resolved for the model's device (so the record
        and the command name what was run)."""
        family = DiffusionConfig.from_dict(loaded.diffusion_config).process
        sampler, steps, cfg = recorded_sampling({**(fallback or {}), **loaded.sampling}, family, sampler=self.sampler,
                                                steps=self.steps, cfg_scale=self.cfg_scale)
        precision = resolve_precision(self.precision, next(loaded.model.parameters()).device)
        return replace(self, sampler=sampler, steps=steps, cfg_scale=cfg, precision=precision)

    def sampling(self, labels: list[int] | None, batch_size: int) -> SamplingSettings:
        """The pipeline's settings, with ``classes`` resolved to label numbers."""
        return SamplingSettings(labels=None if labels is None else tuple(labels), num_samples=self.num_samples,
                                sampler=self.sampler, steps=self.steps, cfg_scale=self.cfg_scale,
                                guided_channels=self.guided_channels, seed=self.seed, batch_size=batch_size,
                                options={} if self.eta is None else {"eta": self.eta}, prompts=self.prompts,
                                negative_prompt=self.negative_prompt, precision=self.precision)

    def command(self, *, steps: int, batch_size: int, npz: bool, out: Path) -> str:
        """A ``ditkit sample`` command line that reproduces this run (``steps``: the resolved step count)."""
        parts = ["ditkit", "sample"]
        if self.checkpoint is not None:
            parts += ["--checkpoint", self.checkpoint]
        if self.classes is not None:
            parts += ["--classes", ",".join(map(str, self.classes))]
        if self.num_samples is not None:
            parts += ["--num-samples", str(self.num_samples)]
        parts += SamplingConfig.command_args(sampler=self.sampler, steps=steps, cfg_scale=self.cfg_scale,
                                             guided_channels=self.guided_channels, eta=self.eta, seed=self.seed,
                                             batch_size=batch_size, precision=self.precision)
        if self.vae is not None:
            parts += ["--vae", self.vae]
        if self.num_heads is not None:
            parts += ["--num-heads", str(self.num_heads)]
        for prompt in self.prompts or ():
            parts += ["--prompt", prompt]
        if self.negative_prompt is not None:
            parts += ["--negative-prompt", self.negative_prompt]
        parts += ["--out", str(out)] + (["--npz"] if npz else [])
        return shlex.join(parts)


def sample_name(index: int, label: int | None) -> str:
    return f"{index:06d}" + ("" if label is None else f"_class{label}")


def _existing_samples(folder: Path, suffix: str) -> dict[int, Path]:
    found = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _SAMPLE_NAME.match(path.name)
            if match and match.group(3) == suffix:
                found[int(match.group(1))] = path
    return found


def _settings_record(settings: SampleSettings, loaded, labels: list[int] | None, steps: int) -> dict:
    record = asdict(settings)
    record["checkpoint"] = loaded.checkpoint  # the resolved path (the bundled default included)
    record["classes"] = labels  # as numbers: "cat" and its number resume the same run
    record["steps"] = steps
    for key in ("eta", "prompts", "negative_prompt"):
        if record[key] is None:
            del record[key]  # runs that never set it keep the record (and resume) they had
    if record["precision"] == "fp32":
        del record["precision"]
    vae = settings.vae
    if vae is not None and vae.lower() != "none" and Path(vae).exists():
        vae = str(Path(vae).resolve())
    record["vae"] = vae
    return record


def _check_resumable(out: Path, settings: dict, model_config: dict, sample_dir: Path, suffix: str) -> None:
    if out.exists() and not out.is_dir():
        raise DitkitError(f"the output path {out} is a file, not a folder")
    run_json = out / "run.json"
    if not run_json.is_file():
        if _existing_samples(sample_dir, suffix):
            raise DitkitError(f"{out} holds samples but no run.json, so they cannot be resumed; "
                              "choose another --out folder")
        ours = [name for name in OUTPUT_NAMES if (out / name).exists() or (out / name).is_symlink()]
        if ours:  # not a ditkit sample run: files of the user's that the run would replace
            raise DitkitError(f"{out} already holds {', '.join(ours)} and is not a `ditkit sample` output folder, "
                              "so nothing was written there; choose another --out folder")
        return
    from .uni_folder import is_uni_output

    if is_uni_output(out):
        raise DitkitError(f"{out} is a `ditkit uni` output folder, not a `ditkit sample` one, so nothing was "
                          "written there; choose another --out folder")
    try:
        previous = json.loads(run_json.read_text())
        old_settings, old_model = previous["settings"], previous["model"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DitkitError(f"{run_json} is not a `ditkit sample` run record (unreadable, or written by something "
                          "else), so nothing was written there; choose another --out folder") from None
    changed = sorted(k for k in set(old_settings) | set(settings) if old_settings.get(k) != settings.get(k))
    if old_model != model_config:
        changed.append("model config")
    if changed:
        raise DitkitError(f"{out} holds a run with different settings ({', '.join(changed)}); resume it with "
                          "the same settings or choose another --out folder")


def sample_to_folder(settings: SampleSettings, out: str | Path, *, batch_size: int = 32, npz: bool = False,
                     device: str | None = None, progress: bool = True) -> dict:
    """Run ``ditkit sample``: draw the samples ``settings`` describe into ``out`` (see the module doc).

    Returns a summary: ``out``, ``num_samples``, ``skipped`` (already there), ``generated`` (by this
    process), ``rank``, ``world_size``, and the paths written by rank 0.
    """
    out = Path(out)
    check_writable(out)  # a read-only place, or a file on the way: one line now, not after the sampling
    # Ranks may wait long at a barrier while others sample a bigger share (e.g. on resume): generous timeout.
    with process_group(device, timeout=timedelta(hours=24)) as ranks:
        device = ranks.device
        loaded = load_for_sampling(settings.checkpoint, device=device, num_heads=settings.num_heads)
        settings = settings.resolved_for(loaded)
        check_conditioning(loaded.model, classes=settings.classes, prompts=settings.prompts)
        _check_prompted(loaded.model, settings)  # the conditioning is checked before any encoder loads
        loaded = DiTPipeline.from_loaded(loaded, vae=settings.vae, device=device)
        model, codec, text_codec = loaded.model, loaded.codec, loaded.text_codec
        if npz and codec is None:
            raise DitkitError("--npz needs decoded images; drop --vae none")
        labels = None if settings.classes is None else \
            classes_to_labels(settings.classes, loaded.class_names, model.config.num_classes)
        sampling = settings.sampling(labels, batch_size)
        # bad input fails here, before the folder is touched
        plan = plan_sampling(model, sampling, codec=codec, diffusion_config=loaded.diffusion_config,
                             text_codec=text_codec)
        total = plan.total
        record = _settings_record(settings, loaded, labels, sampling.resolved_steps)
        model_config = model.config.to_dict()
        sample_dir = out / ("latents" if codec is None else "samples")
        suffix = "safetensors" if codec is None else "png"
        _check_resumable(out, record, model_config, sample_dir, suffix)

        ranks.barrier()  # every rank has read the old run.json before rank 0 rewrites it
        if ranks.is_main:
            sample_dir.mkdir(parents=True, exist_ok=True)
            for stale in sample_dir.glob(".*.tmp"):  # left by an interrupted run
                stale.unlink(missing_ok=True)
            command = settings.command(steps=sampling.resolved_steps, batch_size=batch_size, npz=npz, out=out)
            runtime = {"batch_size": batch_size, "device": str(device), "world_size": ranks.world_size}
            atomic_write_json(out / "run.json", _run_info(loaded, command, record, runtime))
        ranks.barrier()

        done = _existing_samples(sample_dir, suffix)
        missing = [i for i in range(total) if i not in done]
        mine = missing[ranks.rank::ranks.world_size]
        batches = generate_batches(model, sampling, codec=codec, diffusion_config=loaded.diffusion_config,
                                   progress=progress and ranks.is_main, sample_indices=mine, device=device,
                                   text_codec=text_codec)
        _write_samples(batches, plan.labels, codec is None, sample_dir)
        ranks.barrier()  # all samples are on disk

        summary = {"out": str(out), "num_samples": total, "skipped": total - len(missing),
                   "generated": len(mine), "rank": ranks.rank, "world_size": ranks.world_size, "written": []}
        if ranks.is_main:
            captions = plan.text.prompts if plan.text is not None else None
            summary["written"] = _gather(out, sample_dir, suffix, total, plan.labels, npz, captions)
        ranks.barrier()  # keep the group alive until rank 0 is done reading
    return summary


def _check_prompted(model, settings: SampleSettings) -> None:
    """A text model needs prompts (without, it would draw one unconditional image, silently)."""
    if is_text_model(model) and not settings.prompts:
        raise DitkitError(f"{settings.checkpoint or 'this checkpoint'} is a text-to-image model: give --prompt TEXT "
                          "(repeat for several) or --prompts-file FILE; --prompt \"\" draws unconditional samples")


def _run_info(loaded, command: str, record: dict, runtime: dict) -> dict:
    """run.json: what reproduces the run and what a resume must match."""
    model = loaded.model
    return {"ditkit_version": __version__, "command": command, "settings": record, "model": model.config.to_dict(),
            "diffusion": effective_diffusion_config(loaded.diffusion_config, learn_sigma=model.config.learn_sigma),
            "codec": loaded.codec_config, "class_names": loaded.class_names, "runtime": runtime}


def _write_samples(batches, labels, latents: bool, sample_dir: Path) -> None:
    """Each sample as its own file, atomically (so an interrupted run resumes from what is complete)."""
    for batch in batches:
        for position, index in enumerate(batch.indices):
            name = sample_name(index, None if labels is None else labels[index])
            if latents:
                data = save({"latent": batch.latents[position].contiguous()})
                atomic_write(sample_dir / f"{name}.safetensors", lambda f, data=data: f.write(data))
            else:
                save_png(batch.images[position], sample_dir / f"{name}.png")


def _gather(out: Path, sample_dir: Path, suffix: str, total: int, labels, npz: bool, captions=None) -> list[str]:
    files = _existing_samples(sample_dir, suffix)
    missing = [i for i in range(total) if i not in files]
    if missing:
        raise DitkitError(f"{len(missing)} samples are missing from {sample_dir} (first: index {missing[0]})")
    if suffix == "safetensors":
        latents = torch.stack([load_file(files[i])["latent"] for i in range(total)])
        tensors = {"latents": latents}
        if labels is not None:
            tensors["labels"] = torch.tensor(labels, dtype=torch.long)
        data = save(tensors, metadata={"ditkit_version": __version__})
        atomic_write(out / "latents.safetensors", lambda f: f.write(data))
        return [str(out / "latents.safetensors")]
    images = np.stack([read_png(files[i]) for i in range(total)])
    grid = make_grid(images, labels) if captions is None else captioned_grid(images, captions)  # text: with prompts
    save_png(grid, out / "grid.png")
    written = [str(out / "grid.png")]
    if npz:
        write_npz(out / "samples.npz", images, labels)
        written.append(str(out / "samples.npz"))
    return written
