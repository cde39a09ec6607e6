import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "reference-dit"

# CI has 2 dedicated cores; an explicit OMP_NUM_THREADS (e.g. on a shared machine) wins.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {FIXTURES} (CI keeps ../shared beside the checkout)")
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A randomly initialised 1-layer BERT with MiniLM's tokenizer: loads in a blink, the real encoder's code path."""
    from transformers import BertConfig, BertModel

    from ditkit.codecs.text import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(os.path.join(minilm_path(), name), folder / name)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(folder)
    return str(folder)
