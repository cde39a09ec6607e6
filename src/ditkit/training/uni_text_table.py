"""Stage 2's text tokens, computed once: every caption of the data through the frozen text encoder and the
frozen ``encode_prefix`` (``ditkit train --model uvit-* --text-cache DIR``).

Encoding captions is most of a small U-ViT's step on a CPU (MiniLM: 0.6 s of CPU time per 64 captions). The
table encodes each distinct caption once, in fixed chunks in first-seen order — so the numbers never depend
on which batch a caption first came in, and a resumed run (which reloads or rebuilds the table) stays
bit-exact. Saved as ``DIR/uni-text-tokens.safetensors`` (float32 (U, T, D)) beside ``.json`` (the captions and a
fingerprint of the encoder, the reduction's weights and the captions); a stale table is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

from ..fileio import atomic_path, atomic_write_json, check_replaceable

CHUNK = 64
NAME = "uni-text-tokens"
FORMAT = "ditkit-uni-text-tokens"
WHAT = f"a U-ViT text-token table (ditkit train --model uvit-* --text-cache: {NAME}.json)"


def is_token_table(folder) -> bool:
    """Whether ``folder`` holds a table ditkit wrote (its own marker: ``uni-text-tokens.json``)."""
    try:
        with open(os.path.join(folder, NAME + ".json"), encoding="utf-8") as f:
            meta = json.load(f)
        return meta.get("format", FORMAT) == FORMAT and "fingerprint" in meta
    except (OSError, ValueError, AttributeError):
        return False


def _fingerprint(uni, captions: list[str]) -> str:
    h = hashlib.sha256(json.dumps(uni.text_encoder.to_config(), sort_keys=True).encode())
    for name, tensor in sorted(uni.caption_decoder.encode_prefix.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    h.update("\n".join(captions).encode())
    return h.hexdigest()


class TextTokenTable:
    """Caption → its (T, D) text tokens, for every caption of a dataset."""

    def __init__(self, captions: list[str], tokens: torch.Tensor):
        self.index = {c: i for i, c in enumerate(captions)}
        self.tokens = tokens  # (U, T, D)

    @classmethod
    def build(cls, uni, captions: list[str], folder: str | None = None, d=None) -> "TextTokenTable":
        """From ``folder`` when it holds this exact table, else encoded (by rank 0 when there is a folder to
        share it through; else by every rank, in the same chunks, to the same numbers) and saved there."""
        if folder:
            check_replaceable(folder, is_token_table, WHAT)  # a file or someone else's folder: refused, untouched
        unique = list(dict.fromkeys(captions))
        key = _fingerprint(uni, unique)
        stem = os.path.join(folder, NAME) if folder else None
        if stem and (d is None or d.is_main) and not _matches(stem, key):
            tokens = _encode(uni, unique)
            os.makedirs(folder, exist_ok=True)
            with atomic_path(stem + ".safetensors", suffix=".safetensors") as tmp:
                save_file({"tokens": tokens}, str(tmp))
            atomic_write_json(stem + ".json", {"format": FORMAT, "fingerprint": key, "captions": unique})
        if d is not None:
            d.barrier()
        return cls(unique, load_file(stem + ".safetensors")["tokens"] if stem else _encode(uni, unique))

    def lookup(self, captions: list[str]) -> torch.Tensor:
        """(N, T, D) tokens of ``captions`` (each must be one of the table's)."""
        return self.tokens[torch.tensor([self.index[c] for c in captions])]


@torch.no_grad()
def _encode(uni, captions: list[str]) -> torch.Tensor:
    print(f"ditkit train: encoding {len(captions)} distinct captions once (text tokens)", file=sys.stderr)
    parts = [uni.encode_prompts(captions[i:i + CHUNK]).float().cpu() for i in range(0, len(captions), CHUNK)]
    return torch.cat(parts).contiguous()  # (U, T, D)


def _matches(stem: str, key: str) -> bool:
    try:
        with open(stem + ".json") as f:
            return json.load(f)["fingerprint"] == key and os.path.isfile(stem + ".safetensors")
    except (OSError, ValueError, KeyError):
        return False
