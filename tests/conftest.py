import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"  # golden data, vendored: see fixtures/README.md

# tests/ is a package (tests/<area>/ mirrors src/ditkit/<area>/), so this module is ``tests.conftest``: import
# helpers as ``from tests.conftest import fixture_path``.

# CI has 2 dedicated cores; an explicit OMP_NUM_THREADS (e.g. on a shared machine) wins.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def fixture_path(*parts: str) -> Path:
    """A vendored golden file or folder, e.g. ``fixture_path("reference-dit", "tiny_dit_expected.pt")``.

    The one way tests reach tests/fixtures. A missing one raises (a failure, or a collection error at module
    level), never a skip: the golden tests must not pass by not running.
    """
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"test fixture missing: {path} (vendored in the repository; see "
                                f"tests/fixtures/README.md)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The official DiT fixtures (tests/fixtures/reference-dit)."""
    return fixture_path("reference-dit")


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
