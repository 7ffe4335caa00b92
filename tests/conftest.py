"""Shared fixtures: per-test library folders and a deterministic fake encoder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


@pytest.fixture
def library_dir(tmp_path) -> Path:
    """A copy of this repository's library (catalogue and committed index)."""
    target = tmp_path / "library"
    target.mkdir()
    shutil.copy(REPO / "catalogue.yaml", target / "catalogue.yaml")
    shutil.copytree(REPO / "index", target / "index",
                    ignore=shutil.ignore_patterns(".lock", "*.tmp"))
    return target


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


@pytest.fixture
def small_library(tmp_path) -> Path:
    """A three-entry library with no index yet."""
    target = tmp_path / "small"
    target.mkdir()
    (target / "catalogue.yaml").write_text(SMALL_CATALOGUE)
    return target
