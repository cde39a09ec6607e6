"""A pre-extracted latent cache (as fast-DiT does): encode a dataset once with a codec, storing the
latents of every image *and* of its horizontal flip, then train from the cache with no encoder in
the loop.

Layout of a cache folder: ``cache.json`` (codec config, dataset facts, ditkit version, shard sizes)
and ``shard-00000.safetensors``, ... each holding ``latents``, ``latents_flipped`` (float32, N×C×h×w)
and ``labels`` (int64). Shards are read lazily so a cache larger than memory still works.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..errors import DitkitError
from ..fileio import atomic_dir
from ..version import __version__
from .transforms import FlipMixin

SHARD_SIZE = 8192


@torch.no_grad()
def build_latent_cache(dataset, codec, out_dir: str, *, batch_size: int = 32, seed: int = 0,
                       device: str | torch.device = "cpu", progress: bool = True) -> str:
    """Encode every item of ``dataset`` (unflipped) and its mirror image; returns ``out_dir``.

    The VAE's latent *sample* is stored (the DiT recipe trains on samples, not means), drawn from a
    generator seeded with ``seed`` so the cache is reproducible. Written to a temporary folder and
    renamed into place, so an interrupted build never leaves a half cache behind.
    """
    out_dir = os.path.abspath(out_dir)
    flip_was = getattr(dataset, "flip", False)
    dataset.flip = False  # we store both orientations explicitly
    generator = torch.Generator(device=device).manual_seed(seed)
    shard_sizes, buf = [], {"latents": [], "latents_flipped": [], "labels": []}

    def flush(folder):
        if not buf["labels"]:
            return
        tensors = {k: torch.cat(v).contiguous() for k, v in buf.items()}
        save_file(tensors, os.path.join(folder, f"shard-{len(shard_sizes):05d}.safetensors"))
        shard_sizes.append(len(tensors["labels"]))
        for v in buf.values():
            v.clear()

    try:
        with atomic_dir(out_dir) as tmp:
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
            for images, labels in tqdm(loader, desc="encoding latents", disable=not progress):
                images = images.to(device)
                buf["latents"].append(codec.encode(images, generator=generator).float().cpu())
                buf["latents_flipped"].append(codec.encode(images.flip(-1), generator=generator).float().cpu())
                buf["labels"].append(torch.as_tensor(labels, dtype=torch.int64))
                if sum(len(x) for x in buf["labels"]) >= SHARD_SIZE:
                    flush(tmp)
            flush(tmp)
            meta = {
                "format": "ditkit-latent-cache",
                "ditkit_version": __version__,
                "codec": codec.to_config(),
                "dataset": getattr(dataset, "name", type(dataset).__name__),
                "image_size": dataset.image_size,
                "num_classes": dataset.num_classes,
                "class_names": list(dataset.class_names),
                "seed": seed,
                "shard_sizes": shard_sizes,
            }
            (tmp / "cache.json").write_text(json.dumps(meta, indent=2))
    finally:
        dataset.flip = flip_was
    return out_dir


class LatentCacheDataset(FlipMixin, torch.utils.data.Dataset):
    """Items ``(latent, label)`` from a cache folder; with ``flip`` the stored mirror latent is used
    for the items the deterministic flip rule picks (the same rule pixel datasets use)."""

    def __init__(self, cache_dir: str, flip: bool = True, flip_seed: int = 0):
        meta_path = os.path.join(cache_dir, "cache.json")
        if not os.path.isfile(meta_path):
            raise DitkitError(f"not a latent cache (no cache.json): {cache_dir}")
        with open(meta_path) as f:
            self.meta = json.load(f)
        self.cache_dir = cache_dir
        self._offsets = [0]
        for n in self.meta["shard_sizes"]:
            self._offsets.append(self._offsets[-1] + n)
        self._handles: dict[int, object] = {}
        with safe_open(self._shard_path(0), framework="pt") as f:
            shape = f.get_slice("latents").get_shape()
        self.channels = shape[1]
        self.latent_size = shape[2]
        self.image_size = self.meta["image_size"]
        self.num_classes = self.meta["num_classes"]
        self.class_names = self.meta["class_names"]
        self.codec_config = self.meta["codec"]
        self.flip = flip
        self.flip_seed = flip_seed
        self.name = f"latents:{self.meta['dataset']}"

    def _shard_path(self, k: int) -> str:
        return os.path.join(self.cache_dir, f"shard-{k:05d}.safetensors")

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getstate__(self):  # open file handles do not travel to DataLoader workers
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = next(s for s in range(len(self._offsets) - 1) if i < self._offsets[s + 1])
        if k not in self._handles:
            self._handles[k] = safe_open(self._shard_path(k), framework="pt")
        f = self._handles[k]
        j = i - self._offsets[k]
        flipped = self.flip and self._flip_choice(i)
        latent = f.get_slice("latents_flipped" if flipped else "latents")[j : j + 1][0]
        label = int(f.get_slice("labels")[j : j + 1][0])
        return latent, label

    def _flip_choice(self, i: int) -> bool:
        from .transforms import flip_decision

        return flip_decision(self.flip_seed, self.epoch, i)
