"""Shared fixtures: per-test library folders and a deterministic fake encoder.

Tests read the frozen library in tests/fixtures/library/ (a copy of the reading list and its
built index), not the repository's live catalogue.yaml, so adding a paper to the reading list
does not change what they see. Refresh it with scripts/refresh-test-fixture. Counts and entries
are read from the fixture (FIXTURE_CATALOGUE), never written into tests as numbers.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from paperscope.catalogue import parse_catalogue
from paperscope.index import IndexStore
from paperscope.indexer import build_index
from paperscope.records import Document

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_LIBRARY = FIXTURES / "library"
FIXTURE_CATALOGUE = parse_catalogue((FIXTURE_LIBRARY / "catalogue.yaml").read_text(encoding="utf-8"),
                                    Path("catalogue.yaml"))
FIXTURE_ENTRIES = len(FIXTURE_CATALOGUE.entries)
FIXTURE_ARXIV_ENTRIES = len([entry for entry in FIXTURE_CATALOGUE.entries if entry.arxiv_id])


class FakeEncoder:
    """Bag-of-words vectors from hashed tokens: similar texts get similar vectors."""

    model_name = "fake-model"
    dimension = 32

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, progress=None):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in text.lower().split():
                out[row, int(hashlib.md5(token.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    @property
    def embedded(self) -> int:
        return sum(len(call) for call in self.calls)


@pytest.fixture(scope="session")
def _web_stand_in():
    from .web_server import WebStub

    with WebStub() as stub:
        yield stub


@pytest.fixture(autouse=True)
def _no_real_web(_web_stand_in, monkeypatch):
    """No test reaches GitHub: the web source asks a local stand-in with recorded READMEs
    (tests/web_server.py) unless a test points it elsewhere."""
    monkeypatch.setenv("PAPERSCOPE_GITHUB_API", _web_stand_in.github)


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


def docs(**texts):
    """Documents with the given texts, ids from the keywords."""
    return [Document(id=key, title=key.upper(), text=text, meta={"section": "S", "kind": "paper"})
            for key, text in texts.items()]


CORPUS = {
    "lora": "low rank adaptation of large language models for finetuning",
    "qlora": "quantized low rank finetuning on one GPU",
    "rlhf": "reinforcement learning from human feedback with a reward model",
    "codex": "a language model trained on code evaluated on programming problems",
}


def many_docs(count):
    """`count` short documents over eight words, years 2020 to 2024."""
    words = ["adapter", "quantized", "reward", "code", "vision", "speech", "graph", "protein"]
    return [Document(id=f"d{i}", title=f"Paper {i}", text=f"{words[i % 8]} {words[(i * 3) % 8]} study {i}",
                     meta={"year": 2020 + i % 5}) for i in range(count)]


@pytest.fixture
def built(tmp_path, fake_encoder):
    """An index of CORPUS built with the fake encoder: (its IndexStore, the build report)."""
    store = IndexStore(tmp_path / "index")
    report = build_index(store, docs(**CORPUS), model="fake-model", encoder=fake_encoder)
    return store, report


def copy_fixture_library(target: Path) -> Path:
    """Copy the frozen test library (catalogue and built index) into `target`."""
    target.mkdir()
    shutil.copy(FIXTURE_LIBRARY / "catalogue.yaml", target / "catalogue.yaml")
    shutil.copytree(FIXTURE_LIBRARY / "index", target / "index",
                    ignore=shutil.ignore_patterns(".lock", "*.tmp", "chunks"))
    return target


@pytest.fixture
def library_dir(tmp_path) -> Path:
    """A copy of the frozen test library, tests/fixtures/library/ (catalogue and built index)."""
    return copy_fixture_library(tmp_path / "library")


SMALL_CATALOGUE = """\
# a small catalogue for tests
- section: Training Recipe
  entries:
    - id: lora
      title: "LoRA: Low-Rank Adaptation of Large Language Models"
      url: https://arxiv.org/abs/2106.09685
      kind: paper
      arxiv: "2106.09685"
    - id: alpaca
      title: Stanford Alpaca
      url: https://github.com/tatsu-lab/stanford_alpaca
      kind: repo
      summary: Instruction tuning of LLaMA on generated demonstrations.
- section: Evaluation
  entries:
    - id: humaneval
      title: HumanEval
      url: https://github.com/openai/human-eval
      kind: repo
      year: 2021
      summary: Hand-written Python programming problems with unit tests for code generation.
"""


# The records `ingest` fetches for SMALL_CATALOGUE's repositories (READMEs recorded in
# tests/fixtures/web/, served by the local stand-in of GitHub)
SMALL_CATALOGUE_PAGES = ["url:https://github.com/openai/human-eval", "url:https://github.com/tatsu-lab/stanford_alpaca"]


@pytest.fixture
def small_library(tmp_path) -> Path:
    """A three-entry library with no index yet."""
    target = tmp_path / "small"
    target.mkdir()
    (target / "catalogue.yaml").write_text(SMALL_CATALOGUE)
    return target
