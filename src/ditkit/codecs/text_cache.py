"""A text-embedding cache: every distinct caption is encoded once, then looked up.

``TextCache(codec)`` memoises in memory (``encode(captions)`` encodes only the unseen ones, in one batch);
``build_text_cache(captions, codec, folder)`` fills it from a dataset's captions and saves it;
``TextCache.load(folder, codec)`` reopens it (the codec config must match the one it was built with).

Folder layout: ``cache.json`` (codec config, the captions in order, token length, shard sizes, ditkit
version) and ``shard-00000.safetensors``, ... holding ``states`` (float16, N×L×D, L = the longest cached
caption's token count, so the padding past it is not stored), ``mask`` (uint8, N×L) and ``pooled``
(float32, N×D). Padding positions come back as zeros (an encoder's states there are not kept): right for
models that mask padding, as the text DiT does. Written with ``atomic_dir``: an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import load_file, save_file

from ..errors import DitkitError
from ..fileio import atomic_dir, check_replaceable
from ..version import __version__
from .text import TextCodec, TextEncoding

SHARD_SIZE = 8192
FORMAT = "ditkit-text-cache"
WHAT = "a ditkit text cache (its cache.json says \"format\": \"ditkit-text-cache\")"


def is_text_cache(folder) -> bool:
    """Whether ``folder`` is a text cache ditkit wrote (its own marker: cache.json's format)."""
    try:
        with open(os.path.join(folder, "cache.json"), encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_text_cache_folder(folder) -> None:
    """Before any work: ``folder`` may be absent, empty or a text cache; anything else is refused (never replaced)."""
    check_replaceable(folder, is_text_cache, WHAT)


class TextCache:
    """Caption → its encoding, filled lazily from ``codec`` (or loaded from a folder)."""

    def __init__(self, codec: TextCodec):
        self.codec = codec
        self._index: dict[str, int] = {}
        self._rows: list[TextEncoding] = []  # one-row encodings, states trimmed to their real tokens

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, caption: str) -> bool:
        return caption in self._index

    def _add(self, captions: list[str]) -> None:
        new = list(dict.fromkeys(c for c in captions if c not in self._index))
        if not new:
            return
        enc = self.codec.encode(new)
        for i, caption in enumerate(new):
            keep = max(int(enc.mask[i].sum()), 1)  # the real tokens come first (right padding)
            self._index[caption] = len(self._rows)
            self._rows.append(TextEncoding(enc.states[i:i + 1, :keep].half().cpu(), enc.mask[i:i + 1, :keep].cpu(),
                                           enc.pooled[i:i + 1].cpu()))

    def encode(self, captions: list[str]) -> TextEncoding:
        """The batch's encodings, padded to the codec's ``max_length`` (float32, CPU)."""
        self._add(list(captions))
        n, length = len(captions), self.codec.max_length
        states = torch.zeros(n, length, self.codec.width)
        mask = torch.zeros(n, length, dtype=torch.bool)
        pooled = torch.zeros(n, self.codec.width)
        for i, caption in enumerate(captions):
            row = self._rows[self._index[caption]]
            k = row.states.shape[1]
            states[i, :k], mask[i, :k], pooled[i] = row.states[0].float(), row.mask[0], row.pooled[0]
        return TextEncoding(states, mask, pooled)

    # -- persistence
    def save(self, folder: str) -> str:
        captions = sorted(self._index, key=self._index.get)
        if not captions:
            raise DitkitError("the text cache is empty: nothing to save")
        length = max(r.states.shape[1] for r in self._rows)
        shard_sizes = []
        with atomic_dir(folder, is_text_cache, WHAT) as tmp:
            for start in range(0, len(captions), SHARD_SIZE):
                rows = self._rows[start:start + SHARD_SIZE]
                save_file(_stack(rows, length), os.path.join(tmp, f"shard-{len(shard_sizes):05d}.safetensors"))
                shard_sizes.append(len(rows))
            meta = {"format": FORMAT, "ditkit_version": __version__, "codec": self.codec.to_config(),
                    "length": length, "shard_sizes": shard_sizes, "captions": captions}
            with open(os.path.join(tmp, "cache.json"), "w", encoding="utf-8") as f:
                json.dump(meta, f)
        return folder

    @classmethod
    def open(cls, folder: str | None, codec: TextCodec) -> "TextCache":
        """The cache to fill and save at ``folder``: the one there, or a new one when ``folder`` is absent or
        empty (or None: memory only). Any other file or folder there is refused now, before any work."""
        if folder is None:
            return cls(codec)
        check_text_cache_folder(folder)
        return cls.load(folder, codec) if is_text_cache(folder) else cls(codec)

    @classmethod
    def load(cls, folder: str, codec: TextCodec) -> "TextCache":
        path = os.path.join(folder, "cache.json")
        if not os.path.isfile(path):
            raise DitkitError(f"{folder} is not a text cache (no cache.json)")
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError) as exc:
            raise DitkitError(f"cannot read the text cache {folder} ({exc}); delete it to rebuild it") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DitkitError(f"{folder} is not a ditkit text cache (its cache.json has another format)")
        if meta.get("codec") != codec.to_config():
            raise DitkitError(f"the text cache {folder} was built with the text encoder {meta.get('codec')}, "
                              f"not {codec.to_config()}; rebuild it")
        cache = cls(codec)
        captions = iter(meta["captions"])
        for shard in range(len(meta["shard_sizes"])):
            tensors = load_file(os.path.join(folder, f"shard-{shard:05d}.safetensors"))
            for i in range(tensors["states"].shape[0]):
                keep = max(int(tensors["mask"][i].sum()), 1)
                cache._index[next(captions)] = len(cache._rows)
                cache._rows.append(TextEncoding(tensors["states"][i:i + 1, :keep], tensors["mask"][i:i + 1, :keep].bool(),
                                                tensors["pooled"][i:i + 1]))
        return cache


def _stack(rows: list[TextEncoding], length: int) -> dict[str, torch.Tensor]:
    states = torch.zeros(len(rows), length, rows[0].states.shape[-1], dtype=torch.float16)
    mask = torch.zeros(len(rows), length, dtype=torch.uint8)
    for i, row in enumerate(rows):
        k = row.states.shape[1]
        states[i, :k], mask[i, :k] = row.states[0], row.mask[0].to(torch.uint8)
    return {"states": states, "mask": mask, "pooled": torch.cat([r.pooled for r in rows]).contiguous()}


def build_text_cache(captions, codec: TextCodec, folder: str | None = None, *, batch_size: int = 256) -> TextCache:
    """Encode every distinct caption of ``captions`` (a list, or a dataset with ``caption(i)``) once;
    save to ``folder`` when given."""
    if folder is not None:
        check_text_cache_folder(folder)  # before the encoding
    if hasattr(captions, "caption"):
        captions = [captions.caption(i) for i in range(len(captions))]
    unique = list(dict.fromkeys(captions))
    cache = TextCache(codec)
    for start in range(0, len(unique), batch_size):
        cache._add(unique[start:start + batch_size])
    if folder is not None:
        cache.save(folder)
    return cache
