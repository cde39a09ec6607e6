"""Caption decoders: a text latent (B, T, 64) back to words, by a language model conditioned on it as a prefix.

UniDiffuser's text latents are a learned 64-d reduction (``encode_prefix``) of a frozen text encoder's
states; a decoder maps them up again (``decode_prefix``), places them before the caption's token embeddings
and predicts the caption. Two language models share that frame (and the official key names
``encode_prefix`` / ``decode_prefix``):

- ``WordPrefixDecoder`` — offline: a small causal transformer over a word vocabulary, trained by ditkit.
- ``GPT2PrefixDecoder`` — the official ``caption_decoder.pth`` (GPT-2 small under ``gpt.``, 64 → 768 prefix),
  with the GPT-2 tokenizer; needs ``transformers`` and, for the tokenizer, the hub once.

Decoding is beam search (beam 5 by default, as the official decoder) over log-probabilities, stopping at
the end token.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DitkitError

__all__ = ["PrefixDecoder", "WordPrefixDecoder", "GPT2PrefixDecoder", "WORD_SPECIALS", "build_vocab", "tokenize"]

WORD_SPECIALS = ("<pad>", "<eos>", "<unk>")
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case words and single punctuation marks."""
    return _WORD.findall(text.lower())


def build_vocab(captions: Sequence[str]) -> list[str]:
    """Specials, then every word of ``captions`` in first-seen order (deterministic for a given corpus)."""
    seen = dict.fromkeys(WORD_SPECIALS)
    for caption in captions:
        seen.update(dict.fromkeys(tokenize(caption)))
    return list(seen)


class PrefixDecoder(nn.Module):
    """The shared frame: text latents ↔ prefix embeddings, teacher-forced loss and beam search."""

    eos_id: int

    def __init__(self, text_width: int, text_dim: int, lm_width: int):
        super().__init__()
        self.encode_prefix = nn.Linear(text_width, text_dim)  # frozen encoder states → the 64-d text latent
        self.decode_prefix = nn.Linear(text_dim, lm_width)  # text latent → the language model's width

    @property
    def text_dim(self) -> int:
        return self.decode_prefix.in_features

    # ---- to implement: the language model ------------------------------------------------------
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) → (B, L, W)
        raise NotImplementedError

    def logits(self, embeds: torch.Tensor) -> torch.Tensor:  # (B, L, W) → (B, L, V), causal
        raise NotImplementedError

    def ids_of(self, captions: Sequence[str], max_tokens: int) -> torch.Tensor:  # → (B, max_tokens), eos-padded
        raise NotImplementedError

    def text_of(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    # ---- shared ---------------------------------------------------------------------------------
    def _check(self, latents: torch.Tensor) -> None:
        if latents.ndim != 3 or latents.shape[-1] != self.text_dim:
            raise DitkitError(f"the caption decoder takes text latents (B, T, {self.text_dim}), "
                              f"got {tuple(latents.shape)}.")

    def loss(self, latents: torch.Tensor, captions: Sequence[str], max_tokens: int = 24) -> torch.Tensor:
        """Teacher-forced cross-entropy of ``captions`` (then <eos>) after the prefix of ``latents``."""
        return self.token_losses(latents, self.ids_of(captions, max_tokens).to(latents.device)).mean()

    def token_losses(self, latents: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B,) mean cross-entropy per caption of token ``ids`` (B, L) (-100 = padding) after the prefix."""
        self._check(latents)
        prefix = self.decode_prefix(latents)  # (B, T, W)
        logits = self.logits(torch.cat([prefix, self.embed_tokens(ids.clamp(min=0))], dim=1))  # (B, T+L, V)
        predicted = logits[:, prefix.shape[1] - 1:-1]  # (B, L, V): position T-1+i predicts token i
        per_token = F.cross_entropy(predicted.transpose(1, 2), ids, ignore_index=-100, reduction="none")  # (B, L)
        return per_token.sum(1) / (ids != -100).sum(1).clamp(min=1)

    @torch.no_grad()
    def generate(self, latents: torch.Tensor, beam_size: int = 5, max_tokens: int = 24) -> list[str]:
        """One caption per text latent (B, T, text_dim), by beam search."""
        self._check(latents)
        return [self.text_of(self._beam(self.decode_prefix(z[None]), beam_size, max_tokens)) for z in latents]

    def _beam(self, prefix: torch.Tensor, beam_size: int, max_tokens: int) -> list[int]:
        """Best sequence for one (1, T, W) prefix; a beam ends at <eos>, scores are summed log-probs / length."""
        beams = [([], 0.0)]  # (token ids, summed log-prob)
        finished = []
        for _ in range(max_tokens):
            ids = torch.tensor([b[0] for b in beams], dtype=torch.long, device=prefix.device)  # (K, l)
            embeds = torch.cat([prefix.expand(len(beams), -1, -1), self.embed_tokens(ids)], dim=1)  # (K, T+l, W)
            logp = self.logits(embeds)[:, -1].log_softmax(-1)  # (K, V)
            scores = torch.tensor([b[1] for b in beams], device=prefix.device)[:, None] + logp  # (K, V)
            top = scores.flatten().topk(min(beam_size, scores.numel()))
            beams = []
            for score, index in zip(top.values.tolist(), top.indices.tolist()):
                parent, token = divmod(index, logp.shape[1])
                seq = ids[parent].tolist() + [token]
                (finished if token == self.eos_id else beams).append((seq, score))
            if not beams or len(finished) >= beam_size:
                break
        finished.extend(beams)
        best = max(finished, key=lambda b: b[1] / len(b[0]))
        return [t for t in best[0] if t != self.eos_id]


class WordPrefixDecoder(PrefixDecoder):
    """A small causal transformer over a word vocabulary (pre-LN, learned positions, tied output head)."""

    def __init__(self, vocab: Sequence[str], *, text_width: int, text_dim: int = 64, width: int = 128,
                 depth: int = 2, heads: int = 4, max_positions: int = 128):
        super().__init__(text_width, text_dim, width)
        self.vocab = list(vocab)
        if tuple(self.vocab[:3]) != WORD_SPECIALS:
            raise DitkitError(f"a word decoder's vocabulary starts with {', '.join(WORD_SPECIALS)}.")
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.eos_id, self.unk_id = 1, 2
        self.config = dict(text_width=text_width, text_dim=text_dim, width=width, depth=depth, heads=heads,
                           max_positions=max_positions)
        self.tokens = nn.Embedding(len(self.vocab), width)
        self.positions = nn.Parameter(torch.zeros(1, max_positions, width))
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.positions, std=0.02)
        nn.init.normal_(self.tokens.weight, std=0.02)

    def to_config(self) -> dict:
        return {"type": "words", "vocab": self.vocab, **self.config}

    def embed_tokens(self, ids):
        return self.tokens(ids)  # (B, L, W)

    def logits(self, embeds):
        n = embeds.shape[1]
        if n > self.positions.shape[1]:
            raise DitkitError(f"the caption decoder handles {self.positions.shape[1]} positions, not {n}.")
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=embeds.device)  # (n, n) causal
        x = self.layers(embeds + self.positions[:, :n], mask=mask, is_causal=True)  # (B, n, W)
        return self.norm(x) @ self.tokens.weight.T  # (B, n, V)

    def ids_of(self, captions, max_tokens):
        rows = []
        for caption in captions:
            ids = [self.index.get(w, self.unk_id) for w in tokenize(caption)][:max_tokens - 1] + [self.eos_id]
            rows.append(ids + [-100] * (max_tokens - len(ids)))  # -100: ignored by the loss, embedded as <pad>
        return torch.tensor(rows, dtype=torch.long)

    def text_of(self, ids):
        words = [self.vocab[i] for i in ids if i >= len(WORD_SPECIALS)]
        return re.sub(r" ([^\sa-z0-9])", r"\1", " ".join(words))


class GPT2PrefixDecoder(PrefixDecoder):
    """The official caption decoder: GPT-2 (``gpt.``) with a 64 → 768 prefix; built from the file's shapes."""

    def __init__(self, state_shapes: dict, tokenizer=None):
        from transformers import GPT2Config, GPT2LMHeadModel

        vocab, width = state_shapes["gpt.transformer.wte.weight"]
        layers = len({k.split(".")[3] for k in state_shapes if k.startswith("gpt.transformer.h.")})
        text_dim, text_width = state_shapes["encode_prefix.weight"]
        super().__init__(text_width, text_dim, width)
        config = GPT2Config(vocab_size=vocab, n_positions=state_shapes["gpt.transformer.wpe.weight"][0], n_embd=width,
                            n_layer=layers, n_head=max(1, width // 64))
        self.gpt = GPT2LMHeadModel(config)
        self.tokenizer = tokenizer
        self.eos_id = 50256 if vocab > 50256 else vocab - 1  # GPT-2's <|endoftext|>

    def embed_tokens(self, ids):
        return self.gpt.transformer.wte(ids)  # (B, L, W)

    def logits(self, embeds):
        return self.gpt(inputs_embeds=embeds).logits  # (B, L, V)

    def _tokenizer(self):
        if self.tokenizer is None:
            from ..codecs.text import load_pretrained
            from transformers import GPT2TokenizerFast

            self.tokenizer = load_pretrained(GPT2TokenizerFast, "gpt2")
        return self.tokenizer

    def ids_of(self, captions, max_tokens):
        tok = self._tokenizer()
        rows = [(tok.encode(c)[:max_tokens - 1] + [self.eos_id]) for c in captions]
        return torch.tensor([r + [-100] * (max_tokens - len(r)) for r in rows], dtype=torch.long)

    def text_of(self, ids):
        return self._tokenizer().decode(ids).strip()
